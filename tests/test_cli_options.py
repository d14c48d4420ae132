"""One spelling per option across the `timm-t2t` commands: `--model-kwargs` (timm's train.py spelling; `--model-arg`
kept as an alias), `--pretrained` / `--no-pretrained` (timm's) and `--out` for where a command writes (`--out-dir` of
`bench` and `bench-deploy` kept as an alias)."""
import argparse
from typing import Dict

import pytest

from timm_t2t.cli.main import DELEGATED, build_parser

COMMANDS = ['list', 'predict', 'features', 'recipes', *DELEGATED]


def subparsers() -> Dict[str, argparse.ArgumentParser]:
    parsers = {}
    for command in COMMANDS:
        parser = build_parser(command)
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parsers[command] = action.choices[command]
    return parsers


def test_shared_options_have_one_spelling():
    options = {name: {s for a in p._actions for s in a.option_strings} for name, p in subparsers().items()}
    export = {'export'} & set(DELEGATED)  # a model-building writer too, where the command exists
    with_kwargs = {name for name, opts in options.items() if opts & {'--model-kwargs', '--model-arg'}}
    assert with_kwargs == {'predict', 'features', 'convert'} | export
    for name in with_kwargs:
        assert {'--model-kwargs', '--model-arg'} <= options[name], name
    with_pretrained = {name for name, opts in options.items() if opts & {'--pretrained', '--no-pretrained'}}
    assert with_pretrained == {'predict', 'features'} | export  # timm's spelling: argparse.BooleanOptionalAction
    for name in with_pretrained:
        assert {'--pretrained', '--no-pretrained'} <= options[name], name
    writers = {name for name, opts in options.items() if any(o.startswith('--out') for o in opts)}
    assert writers == {'features', 'demo', 'convert', 'bench', 'bench-deploy'} | export
    for name in writers:
        assert '--out' in options[name], name


@pytest.mark.parametrize('argv', [
    ['convert', 'ckpt.pth.tar', '--model', 't2t_vit_7', '--out', 'o', '--model-kwargs', 'depth=1', 'img_size=64'],
    ['convert', 'ckpt.pth.tar', '--model', 't2t_vit_7', '--out', 'o', '--model-arg', 'depth=1', '--model-arg',
     'img_size=64'],
    ['convert', '--model-arg', 'depth=1', 'ckpt.pth.tar', '--model', 't2t_vit_7', '--out', 'o', '--model-kwargs',
     'img_size=64'],  # the alias takes one pair, so a positional may follow it as before
    ['predict', 'a.png', '--model', 't2t_vit_7', '--model-kwargs', 'depth=1', '--model-kwargs', 'img_size=64'],
    ['features', 'a.png', '--model-arg', 'depth=1', '--model-kwargs', 'img_size=64'],
])
def test_model_kwargs_spellings_give_the_same_arguments(argv):
    args = build_parser(argv[0]).parse_args(argv)
    assert dict(args.model_kwargs) == {'depth': 1, 'img_size': 64}


def test_model_kwargs_default_is_empty_and_not_shared():
    first = build_parser('predict').parse_args(['predict', 'a.png'])
    assert first.model_kwargs == []
    first.model_kwargs.append(('depth', 1))
    assert build_parser('predict').parse_args(['predict', 'a.png']).model_kwargs == []


def test_misplaced_positional_names_the_command_positional(capsys):
    with pytest.raises(SystemExit):
        build_parser('convert').parse_args(['convert', '--model-kwargs', 'depth=1', 'ckpt.pth.tar'])
    assert 'give CHECKPOINT before --model-kwargs' in capsys.readouterr().err


@pytest.mark.parametrize('command', ['predict', 'features'])
def test_pretrained_flag(command):
    parse = build_parser(command).parse_args
    assert parse([command, 'a.png']).pretrained is True
    assert parse([command, 'a.png', '--no-pretrained']).pretrained is False
    assert parse([command, 'a.png', '--pretrained']).pretrained is True


def test_bench_out_and_out_dir(tmp_path):
    for option in ('--out', '--out-dir'):
        args = build_parser('bench').parse_args(['bench', option, str(tmp_path)])
        assert args.out_dir == tmp_path
