"""``RunSummary``: every key of summary.json named, the JSON on disk unchanged by a round trip."""

import json

from trimnet.report.html import dumps
from trimnet.report.summary import RunSummary, summary_notes, summary_table

KEYS = ["title", "created", "versions", "machine", "threads", "target", "budget", "original", "winner", "baseline",
        "baseline_note", "interference", "summary_rows", "candidates", "layers", "activation", "architecture",
        "layer_latency", "training", "backends", "hardware", "hardware_note", "train_time", "stages", "commands",
        "metric"]
ROW = {"name": "winner: l1-0.5", "winner": True, "test_accuracy": 0.97, "macs": 4096, "params": 4200, "size_bytes": 20480,
       "p50_ms": 0.01, "p99_ms": 0.02, "throughput": 1e5, "flagged": True, "speedup": 2.0, "throughput_speedup": 1.5}


def summary(**extra) -> dict:
    data = {key: f"value of {key}" for key in KEYS}
    data["metric"] = "accuracy"
    data.update(summary_rows=[ROW], interference={"rows": [ROW["name"]], "load_average": [3.5], "threads": 1},
                baseline_note="x: against the original on onnxruntime (fp32)")
    return {**data, **extra}


def test_to_dict_writes_the_keys_in_the_order_the_report_reads_them():
    data = summary()
    s = RunSummary.from_dict(data)
    assert list(s.to_dict()) == KEYS  # no total_seconds before the report stage has run
    assert dumps(s.to_dict()) == dumps(data)
    s.total_seconds = 12.5
    assert list(s.to_dict()) == [*KEYS, "total_seconds"]


def test_a_written_summary_reads_back_byte_for_byte_with_keys_it_does_not_know():
    text = dumps(summary(total_seconds=3.0, from_a_later_version={"x": 1}))
    s = RunSummary.from_dict(json.loads(text))
    assert s.total_seconds == 3.0 and s.extra == {"from_a_later_version": {"x": 1}}
    assert dumps(s.to_dict()) == text


def test_the_printed_summary():
    data = summary()
    assert summary_table(data) == [["winner: l1-0.5", "97.00 %", 4096, 4200, "20 KiB", "0.01*", 0.02, 100000,
                                    "2.0x", "1.5x"]]
    notes = summary_notes(data)
    assert notes[0] == "x: against the original on onnxruntime (fp32)"
    assert "load 3.5, 1 threads" in notes[1]


def test_a_regression_summary_shows_its_error_not_a_percentage():
    from trimnet.report.html import render
    from trimnet.report.summary import summary_headers

    row = {**ROW, "test_accuracy": -0.3981}
    data = summary(summary_rows=[row], metric="neg_mae")
    assert summary_headers(data)[1] == "test MAE" and summary_table(data)[0][1] == "0.3981"
    assert summary_headers(summary())[1] == "test acc" and summary_table(summary())[0][1] == "97.00 %"
