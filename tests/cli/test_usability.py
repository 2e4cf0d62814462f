"""What a new user sees first: --help lists the config keys with their defaults, typos get a
"did you mean", both flag spellings work, --version is instant, the shell completes."""

import shutil
import subprocess
import sys

import pytest
import yaml


@pytest.mark.parametrize("command, key, default", [
    ("train", "--train.epochs", "10"), ("train", "--data.val_split", "0.1"),
    ("run", "--optimize.max_accuracy_drop", "0.005"), ("run", "--train.epochs", "15"),
    ("optimize", "--optimize.ratios", "0.5,0.75,0.875"), ("prune", "--finetune.epochs", "5"),
    ("quantize", "--quantize.calibration", "300"), ("bench", "--bench.min_time_s", "1.0"),
])
def test_help_lists_config_keys_and_defaults(capsys, command, key, default):
    from trimnet.cli.main import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    keys = text.split("config keys (--KEY VALUE, or in the -c file; default shown):")[1]
    rows = dict(line.split(None, 1) for line in keys.splitlines() if line.strip())
    assert rows[key].strip() == default


def test_both_flag_spellings_are_one_flag(cli):
    code, out, _ = cli("optimize", "--print-config", "--max-accuracy-drop", "0.02")
    assert code == 0 and yaml.safe_load(out)["optimize"]["max_accuracy_drop"] == 0.02
    for spelling in (["--max_accuracy_drop", "0.03"], ["--optimize.max_accuracy_drop", "0.03"],
                     ["--optimize.max-accuracy-drop=0.03"]):
        code, out, err = cli("optimize", "--print-config", *spelling)
        assert code == 0, err
        assert yaml.safe_load(out)["optimize"]["max_accuracy_drop"] == 0.03
    code, out, _ = cli("run", "--print-config", "--optimize.max-accuracy-drop", "0.04", "--train.batch-size", "8")
    cfg = yaml.safe_load(out)
    assert cfg["optimize"]["max_accuracy_drop"] == 0.04 and cfg["train"]["batch_size"] == 8


def test_list_options_take_one_value_or_several(cli):
    """`trimnet run --optimize.ratios 0.5` crashed; --optimize.criteria apoz became a string."""
    code, out, err = cli("run", "--print-config", "--optimize.ratios", "0.5", "--optimize.criteria", "apoz")
    assert code == 0, err
    cfg = yaml.safe_load(out)["optimize"]
    assert cfg["ratios"] == [0.5] and cfg["criteria"] == ["apoz"]
    code, out, _ = cli("run", "--print-config", "--optimize.ratios", "0.5,0.75", "--optimize.criteria", "[l1, apoz]")
    cfg = yaml.safe_load(out)["optimize"]
    assert cfg["ratios"] == [0.5, 0.75] and cfg["criteria"] == ["l1", "apoz"]
    code, _, err = cli("run", "--print-config", "--optimize.ratios", "half")
    assert code == 2 and "optimize.ratios[0] must be a number" in err


@pytest.mark.parametrize("command", ["run", "train", "prune", "optimize", "quantize", "bench"])
def test_every_command_with_a_config_takes_c_and_print_config(cli, command, tmp_path):
    from trimnet.cli.main import build_parser

    parser = build_parser().subcommands[command]
    flags = {o for a in parser._actions for o in a.option_strings}
    assert {"-c", "--print-config"} <= flags
    code, out, err = cli(command, "--print-config")
    assert code == 0, err
    printed = tmp_path / "printed.yaml"
    printed.write_text(out)  # what --print-config prints is a config -c reads back
    code, again, err = cli(command, "-c", printed, "--print-config")
    assert code == 0 and again == out, err


def test_finetune_config_is_public():
    import trimnet as tn

    cfg = tn.FinetuneConfig(epochs=2)
    assert cfg.epochs == 2 and tn.PruneConfig(finetune=cfg).finetune.epochs == 2


def test_version_is_instant_and_imports_no_torch():
    code = ("import sys; from trimnet.cli.main import main; assert main(['--version']) == 0; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["trimnet 0.1.0", "False"]


def test_import_trimnet_stays_free_of_torch_until_used():
    code = ("import sys, trimnet; a = 'torch' in sys.modules; f = trimnet.train; "
            "print(a, 'torch' in sys.modules, callable(f), f.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True", "trimnet.train.loop"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_flags_and_config_keys(cli, tmp_path):
    code, script, _ = cli("completion", "bash")
    assert code == 0
    (tmp_path / "c.sh").write_text(script)

    def complete(*words):
        line = " ".join(words)
        probe = (f"source {tmp_path / 'c.sh'}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                 "_trimnet; printf '%s\\n' \"${COMPREPLY[@]}\"")
        return subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert complete("trimnet", "tra") == ["train"]
    assert "--overwrite" in complete("trimnet", "train", "--ov")
    assert "--train.epochs" in complete("trimnet", "train", "--train.ep")
    assert "--optimize.max_accuracy_drop" in complete("trimnet", "run", "--optimize.max")
    code, fish, _ = cli("completion", "fish")
    assert "__fish_seen_subcommand_from train' -l 'train.epochs'" in fish
