"""The official training recipes in timm_t2t/recipes/*.yaml (package data): one per released model, parseable, and
made of real train.py arguments (checked with timm's own train.py argument parser when TIMM_SCRIPTS_DIR names a timm
checkout, else against the argument list below); found by name with `timm_t2t.recipes` and `timm-t2t recipes`."""
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

import timm
import timm_t2t  # registers the models
from timm_t2t.cli.main import main
from timm_t2t.recipes import RECIPES_DIR as RECIPES, list_recipes, recipe_path
SCRIPTS_DIR = os.environ.get('TIMM_SCRIPTS_DIR')
# Token-labeling weights were trained with the TokenLabeling code base (dense teacher labels, auxiliary head), which
# train.py cannot express and whose T2T-ViT-24 settings are unpublished: no config for them.
NOT_TRAIN_PY = {'t2t_vit_24.tl_in1k'}

# Argument names (argparse dests) of timm's train.py at huggingface/pytorch-image-models main@aa4b5850 (the scripts
# that run unchanged against timm 1.0.31), for machines without a timm checkout.
TRAIN_PY_ARGS = set('''
aa amp amp_dtype aug_repeats aug_splits batch_size bce_loss bce_pos_weight bce_sum bce_target_thresh bn_eps bn_momentum
channels_last checkpoint_hist class_map clip_grad clip_mode color_jitter color_jitter_prob cooldown_epochs crop_pct
cutmix cutmix_minmax data data_dir dataset dataset_download dataset_trust_remote_code decay_epochs decay_milestones
decay_rate device device_modules dist_bn distill_loss_weight drop drop_block drop_connect drop_path epoch_repeats epochs
eval_metric experiment fast_norm fuser gaussian_blur_prob gp grad_accum_steps grad_checkpointing grayscale_prob
head_init_bias head_init_scale hflip img_size in_chans initial_checkpoint input_img_mode input_key input_size
interpolation jsd_loss kd_distill_type kd_loss_type kd_model_name kd_student_feature_dim kd_teacher_feature_dim
kd_temperature kd_token_distill_type layer_decay layer_decay_min_scale layer_decay_no_opt_scale local_rank log_interval
log_wandb lr lr_base lr_base_scale lr_base_size lr_cycle_decay lr_cycle_limit lr_cycle_mul lr_k_decay lr_noise
lr_noise_pct lr_noise_std mean min_lr mixup mixup_mode mixup_off_epoch mixup_prob mixup_switch_prob model model_dtype
model_ema model_ema_decay model_ema_force_cpu model_ema_warmup model_kwargs momentum naflex_loader naflex_loss_scale
naflex_max_seq_len naflex_patch_size_probs naflex_patch_sizes naflex_patchify_channels_first naflex_train_seq_lens
no_aug no_ddp_bb no_prefetcher no_resume_opt num_classes opt opt_betas opt_eps opt_kwargs output patience_epochs
pin_mem pretrained pretrained_path ratio recount recovery_interval remode reprob resplit resume save_images scale sched
sched_on_updates seed smoothing split_bn start_epoch std sync_bn synchronize_step target_key task_loss_weight
torchcompile torchcompile_mode torchscript train_batch_sizes train_batches_per_epoch train_crop_mode train_img_sizes
train_interpolation train_num_samples train_size_probs train_size_random_mix train_size_schedule
train_size_schedule_spread train_split tta use_multi_epochs_loader val_interval val_num_samples val_split
validation_batch_size variable_batch_loss_scale vflip wandb_project wandb_resume_id wandb_tags warmup_epochs warmup_lr
warmup_prefix weight_decay worker_seeding workers
'''.split())

NUMBER = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?')


def _load(path: Path) -> Dict[str, Any]:
    cfg = yaml.safe_load(path.read_text())
    assert isinstance(cfg, dict) and cfg, f'{path.name} is not a mapping of train.py arguments'
    return cfg


def test_one_recipe_per_released_model():
    released = set(timm.list_pretrained('t2t_vit_*'))
    assert {p.stem for p in RECIPES.glob('*.yaml')} == released - NOT_TRAIN_PY


@pytest.mark.parametrize('path', sorted(RECIPES.glob('*.yaml')), ids=lambda p: p.stem)
def test_recipe_matches_its_model_and_uses_train_py_arguments(path):
    cfg = _load(path)
    unknown = set(cfg) - TRAIN_PY_ARGS
    assert not unknown, f'{path.name}: not train.py arguments: {unknown}'
    # YAML 1.1 reads `1e-3` as a string; numbers must be numbers
    for key, value in cfg.items():
        assert not (isinstance(value, str) and NUMBER.fullmatch(value)), f'{path.name}: {key}={value!r} is a string'
    arch, _ = path.stem.split('.')
    assert cfg['model'] == arch and timm.is_model(arch)
    input_size = timm.models.get_pretrained_cfg(path.stem).input_size
    assert cfg['img_size'] == input_size[-1]
    if input_size[-1] != 224:
        assert cfg['model_kwargs']['img_size'] == input_size[-1]  # the model is built for that size too
    assert 'timm_t2t' in cfg['device_modules']
    # the settings every official run shares (official main.py defaults and README commands)
    assert cfg['opt'] == 'adamw' and cfg['epochs'] == 300 and cfg['cooldown_epochs'] == 10
    assert cfg['model_ema'] is True and cfg['model_ema_decay'] == 0.99996 and cfg['drop_path'] == 0.1
    assert (cfg['mixup'], cfg['cutmix'], cfg['smoothing'], cfg['reprob']) == (0.8, 1.0, 0.1, 0.25)
    lr, wd = {'t2t_vit_7': (1e-3, 0.03), 't2t_vit_10': (1e-3, 0.03), 't2t_vit_12': (1e-3, 0.03),
              't2t_vit_14': (5e-4, 0.05), 't2t_vit_t_14': (5e-4, 0.05)}.get(arch, (5e-4, 0.065))
    assert (cfg['lr'], cfg['weight_decay']) == (lr, wd)


@pytest.mark.skipif(not SCRIPTS_DIR, reason='TIMM_SCRIPTS_DIR not set: recipes checked against the list above only')
@pytest.mark.parametrize('path', sorted(RECIPES.glob('*.yaml')), ids=lambda p: p.stem)
def test_recipe_through_train_py_parser(path, monkeypatch):
    """train.py's own `--config` handling gives back every value with the argument's type."""
    spec = importlib.util.spec_from_file_location('timm_train_script', Path(SCRIPTS_DIR) / 'train.py')
    train = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, 'argv', ['train.py', '--config', str(path), '--data-dir', '/nowhere'])
    spec.loader.exec_module(train)
    args, _ = train._parse_args()
    for key, value in _load(path).items():
        assert getattr(args, key) == value, key
        action = next(a for a in train.parser._actions if a.dest == key)
        if action.type in (int, float):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), key


# --- finding a recipe: timm_t2t.recipes and `timm-t2t recipes` --------------------------------------------------------


def test_recipes_ship_inside_the_package():
    assert RECIPES == Path(timm_t2t.__file__).resolve().parent / 'recipes'
    assert list_recipes() == {p.stem: p for p in sorted(RECIPES.glob('*.yaml'))}
    # in timm's order
    assert list(list_recipes()) == [n for n in timm.list_pretrained('t2t_vit*') if n not in NOT_TRAIN_PY]


def test_recipe_path_by_tag_and_by_architecture_default_tag():
    assert recipe_path('t2t_vit_14.in1k_384') == RECIPES / 't2t_vit_14.in1k_384.yaml'
    for name in list_recipes():
        arch = name.split('.')[0]
        # a bare architecture means timm's default tag, as for timm.create_model(arch, pretrained=True)
        assert recipe_path(arch).stem == f'{arch}.{timm.models.get_pretrained_cfg(arch).tag}'


@pytest.mark.parametrize('name, message', [
    ('t2t_vit_14.in21k', "no recipe 't2t_vit_14.in21k' (did you mean 't2t_vit_14.in1k'?)"),
    ('t2t_vit_24.tl_in1k', 'TokenLabeling'),
    ('resnet50', "no recipe 'resnet50'"),
])
def test_unknown_recipe_says_what_exists(name, message):
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        recipe_path(name)
    if name != 't2t_vit_24.tl_in1k':
        assert all(n in str(e.value) for n in list_recipes())


def test_cli_recipes_lists_names_and_paths(capsys):
    assert main(['recipes']) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert {name: Path(path) for name, path in rows} == list_recipes()
    assert main(['recipes', '--json']) == 0
    assert {k: Path(v) for k, v in json.loads(capsys.readouterr().out).items()} == list_recipes()


def test_cli_recipe_prints_one_path_for_train_py_config(capsys):
    assert main(['recipes', 't2t_vit_14.in1k']) == 0
    out = capsys.readouterr().out
    assert out == f"{RECIPES / 't2t_vit_14.in1k.yaml'}\n"  # nothing else: `--config "$(timm-t2t recipes NAME)"`
    assert _load(Path(out.strip()))['model'] == 't2t_vit_14'


def test_cli_unknown_recipe_is_one_line_exit_2(capsys):
    assert main(['recipes', 't2t_vit_99']) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    err = captured.err.strip()
    assert '\n' not in err and err.startswith("timm-t2t recipes: error: no recipe 't2t_vit_99'")
    assert 't2t_vit_t_24.in1k' in err
