"""`trimnet run` end to end on a small bundled dataset, and the report in a real browser."""

import json
import shlex
import shutil
import stat
import subprocess

import pytest

from trimnet.cli.main import main

SMALL = ["--data.source", "breast_cancer", "--model.name", "mlp", "--model.options.hidden", "[128,64]",
         "--train.epochs", "10", "--train.batch_size", "32", "--optimize.criteria", "[l1]",
         "--optimize.ratios", "[0.5]", "--optimize.finetune_epochs", "2", "--optimize.precisions", "[fp32]",
         "--optimize.bench_time_s", "0.2", "--optimize.max_accuracy_drop", "0.02",
         "--measure.backends", "[torch,onnxruntime]", "--measure.devices", "[t4,h100-sxm]"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_run_writes_everything(run_dir):
    for name in ("original/model.safetensors", "best/model.json", "summary.json", "report.html", "optimize.json"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["train", "profile", "hardware estimate", "optimize",
                                                      "export winner", "benchmark", "report"]
    winner = summary["winner"]
    assert winner["latency_ms"] <= summary["original"]["latency_ms"]
    assert any(h["device"].startswith("NVIDIA T4") or "T4" in h["device"] for h in summary["hardware"])
    assert {r["backend"] for r in summary["backends"]} == {"torch", "onnxruntime"}
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "Pareto" in html
    firing = summary["activation"]
    if not winner["original"]:  # the histogram: every channel of the original, the pruned ones marked
        assert len(firing["firing_frequency"]) == len(firing["pruned"]) == 128 + 64
        assert 0 < sum(firing["pruned"]) < len(firing["pruned"])
        assert all(0.0 <= f <= 1.0 for f in firing["firing_frequency"])
        assert 'alt="activation frequency"' in html


@pytest.mark.slow
def test_the_reproduce_command_works_when_pasted_and_resumes(run_dir, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    argv = shlex.split(summary["commands"][0])
    assert argv[:3] == ["trimnet", "run", "-c"] and argv[3] == str(run_dir / "config.yaml")
    mtime = (run_dir / "original" / "model.safetensors").stat().st_mtime
    assert main(argv[1:]) == 0  # the saved config alone: every flag of the first run is in it
    assert (run_dir / "original" / "model.safetensors").stat().st_mtime == mtime
    out = capsys.readouterr().out
    assert "using the trained model" in out and "x: against the original on onnxruntime (fp32)" in out


@pytest.mark.slow
def test_one_baseline_for_card_and_table_and_the_new_figures(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = summary["summary_rows"]
    base = next(r for r in rows if r.get("baseline"))
    assert base["name"] == "original on onnxruntime (fp32)" and base["speedup"] == pytest.approx(1.0)
    winner = next(r for r in rows if r.get("winner"))
    assert summary["winner"]["speedup"] == pytest.approx(winner["speedup"])  # the card is the table's figure
    assert winner["speedup"] == pytest.approx(base["p50_ms"] / winner["p50_ms"])
    html = (run_dir / "report.html").read_text()
    if summary["winner"]["original"]:  # the final side-by-side check found no faster model: the original ships
        assert winner["speedup"] == pytest.approx(1.0) and winner["p50_ms"] == base["p50_ms"]
        assert "the original: nothing measured was faster" in html
    else:
        card = f"{summary['winner']['speedup']:.2f}×"
        assert card in html and "faster than original on onnxruntime (fp32)" in html
    for alt in ("training curves", "architecture before and after", "per-layer latency"):
        assert f'alt="{alt}"' in html, alt
    arch = summary["architecture"]
    assert [(a["in"], a["out"]) for a in arch["original"]] == [(30, 128), (128, 64), (64, 2)]
    assert arch["original"][0]["label"].endswith("Linear 30→128")
    assert len(summary["training"]) == 10 and "val_accuracy" in summary["training"][0]
    layers = summary["layer_latency"]["original"]
    assert sum(r["ms"] for r in layers) > 0 and any("Linear 30→128" in r["layer"] for r in layers)
    for name in ("report.html", "summary.json", "config.yaml", "original/metrics.json", "best/model.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) & 0o044 == 0o044, name  # readable, as 0644


@pytest.mark.slow
def test_report_rebuilds(run_dir, capsys):
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").exists()


def test_report_of_a_directory_without_summary(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "summary.json" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (Debian package chromium)")
def test_report_renders_in_chromium_with_every_figure(run_dir, tmp_path):
    """Headless Chromium loads the page; every <img> must have decoded (naturalWidth > 0)."""
    probe = tmp_path / "probe.html"
    report = (run_dir / "report.html").read_text()
    script = """<script>window.addEventListener('load', () => {
      const imgs = [...document.images];
      document.title = 'IMAGES ' + imgs.length + ' BROKEN ' + imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
    });</script>"""
    probe.write_text(report.replace("</body>", script + "</body>"))
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<title>IMAGES" in done.stdout, done.stderr[-2000:]
    title = done.stdout.split("<title>")[1].split("</title>")[0]
    count, broken = int(title.split()[1]), int(title.split()[3])
    assert count >= 3 and broken == 0


@pytest.mark.slow
def test_a_run_on_a_loaded_machine_flags_its_figures_and_keeps_a_confirmed_winner(tmp_path, cpu_burner, capsys):
    """CPU burners on every core: the figures are flagged, yet a clear win (a wide MLP pruned by 3/4) is
    still picked, and the final side-by-side benchmark confirms it is faster than the original."""
    args = ["--data.source", "breast_cancer", "--model.name", "mlp", "--model.options.hidden", "[1024,1024]",
            "--train.epochs", "8", "--train.batch_size", "32", "--optimize.criteria", "[l1]",
            "--optimize.ratios", "[0.75]", "--optimize.finetune_epochs", "3", "--optimize.finetune_retry_epochs", "0",
            "--optimize.precisions", "[fp32]", "--optimize.bench_time_s", "0.2", "--optimize.max_accuracy_drop",
            "0.05", "--measure.backends", "[onnxruntime]", "--measure.devices", "[t4]", "--out", str(tmp_path / "r")]
    assert main(["run", *args]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    info = summary["interference"]
    assert info["flagged"] and info["threads"] == 1  # the burners leave no core free: one thread
    assert any(r["flagged"] for r in summary["summary_rows"])
    assert "taken while other work competed for the cores" in out and "*" in out
    assert "Measured on a busy machine" in (tmp_path / "r" / "report.html").read_text()
    check = info["confirmation"]
    assert not summary["winner"]["original"] and check["confirmed"] and check["winner_ms"] < check["original_ms"]
