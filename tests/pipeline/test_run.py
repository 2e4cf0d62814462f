"""`trimnet run` end to end on a small bundled dataset, and the report in a real browser."""

import json
import shutil
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
def test_rerun_resumes_from_the_trained_model(run_dir, capsys):
    mtime = (run_dir / "original" / "model.safetensors").stat().st_mtime
    assert main(["run", *SMALL, "--out", str(run_dir)]) == 0
    assert (run_dir / "original" / "model.safetensors").stat().st_mtime == mtime
    assert "using the trained model" in capsys.readouterr().out


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
