"""Building datasets: SciCap JSON, bad input (skipped, counted, listed), the CLI, and loading the result back."""

import json
import shutil

import datasets
import pytest
from PIL import Image

from modeling_scitune.data.build import NothingKept, build_dataset
from modeling_scitune.data.builders import build_pdfs, build_scicap
from modeling_scitune.data.cli import main
from modeling_scitune.data.records import FigureRecord


@pytest.fixture
def scicap_dir(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 48), "white").save(images / "000001.png")
    Image.new("RGB", (64, 48), "gray").save(images / "000002.png")
    (images / "000003.png").write_bytes(b"not a png at all")
    data = {
        "images": [
            {"id": 1, "file_name": "000001.png", "figure_type": "Graph Plot", "ocr": ["Epoch", "Loss"]},
            {"id": 2, "file_name": "000002.png", "figure_type": "Bar Chart", "ocr": []},
            {"id": 3, "file_name": "000003.png", "figure_type": "Graph Plot", "ocr": []},
            {"id": 4, "file_name": "000004.png", "figure_type": "Equation", "ocr": []},
            {"id": 5, "file_name": "000002.png", "figure_type": "Scatterplot", "ocr": []},
        ],
        "annotations": [
            {"image_id": 1, "caption_no_index": "Training loss per epoch.", "paragraph": ["Fig. 1 shows the loss."],
             "mention": [["As Figure 1 shows, loss falls."], ["Loss falls (Fig. 1)."]]},
            {"image_id": 2, "caption_no_index": "Throughput per device.", "paragraph": [], "mention": []},
            {"image_id": 3, "caption_no_index": "A corrupt image.", "paragraph": [], "mention": []},
            {"image_id": 4, "caption_no_index": "A missing image.", "paragraph": [], "mention": []},
            {"image_id": 5, "caption_no_index": "   ", "paragraph": [], "mention": []},
        ],
    }
    (tmp_path / "train.json").write_text(json.dumps(data))
    return tmp_path


def test_scicap_build_skips_bad_items_by_reason_and_lists_them(scicap_dir, tmp_path):
    out = tmp_path / "out"
    summary = build_scicap(str(scicap_dir / "train.json"), str(scicap_dir / "images"), out, variant="CTOM")
    assert summary["splits"] == {"train": 2}
    assert summary["report"]["skipped_by_reason"] == {"corrupt_image": 1, "missing_image": 1, "empty_caption": 1}
    assert {s["id"] for s in summary["report"]["skipped"]} == {"3", "4", "5"}
    assert summary["report"]["inputs"]["train.json"] == {"captions_found": 5, "figures_kept": 2, "mentions_linked": 2}
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense:") and "corrupt_image" in card and "| train.json | 4 | missing_image |" in card
    assert json.loads((out / "summary.json").read_text())["splits"] == {"train": 2}
    loaded = datasets.load_from_disk(str(out))["train"]
    row = loaded[0]
    assert row["messages"][1]["content"][0]["text"] == (
        "Graph Plot Training loss per epoch.\nEpoch\tLoss\nGraph Plot 1 shows the loss.\n"
        "As Graph Plot 1 shows, loss falls.\nLoss falls (Graph Plot 1)."
    )
    assert row["images"][0].size == (64, 48) and row["figure_type"] == "Graph Plot"
    parquet = datasets.load_dataset("parquet", data_dir=str(out / "parquet"))["train"]
    assert parquet[1]["caption"] == "Throughput per device."
    assert list(parquet[1]["images"][0].getdata()) == list(loaded[1]["images"][0].getdata())


def test_unknown_figure_type_is_skipped_not_crashing():
    record = FigureRecord("odd", Image.new("RGB", (32, 32)), "A caption.", figure_type="Pie Chart")
    ok = FigureRecord("ok", Image.new("RGB", (32, 32)), "A caption.", figure_type="Equation")
    dataset, report = build_dataset([("train", "x", record), ("train", "x", ok)])
    assert len(dataset["train"]) == 1
    assert report.to_dict()["skipped_by_reason"] == {"unknown_figure_type": 1}


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")
def test_pdf_without_text_and_missing_pdf_are_skipped(tmp_path):
    scanned = tmp_path / "scanned.pdf"
    Image.new("RGB", (200, 200), "white").save(scanned)  # a PDF with an image and no text layer
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(NothingKept, match="no usable item"):
        build_pdfs([str(scanned), str(broken), str(tmp_path / "absent.pdf")], tmp_path / "out", ocr=False)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())  # written before the build fails
    reasons = summary["report"]["skipped_by_reason"]
    assert reasons == {"no_text_layer": 1, "unreadable_pdf": 1, "missing_file": 1}
    assert summary["splits"] == {}
    assert "no_text_layer" in (tmp_path / "out" / "README.md").read_text()


def test_cli_synthetic_writes_dataset_summary_and_card(tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert main(["synthetic", "--n", "20", "--out", str(out), "--workers", "1", "--variant", "CT"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic (seed 0)" in printed and "skipped by reason: none" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"] == {"train": 10, "validation": 5, "test": 5}
    dataset = datasets.load_from_disk(str(out))
    row = dataset["train"][0]
    assert row["variant"] == "CT"
    assert row["messages"][1]["content"][0]["text"].startswith(row["figure_type"] + " ")


def test_hostile_scicap_records_are_skipped_with_their_reasons(tmp_path, capsys):
    """A decompression bomb, wrong field types, duplicate ids and paths outside the image folder: each is one counted
    skip, and every good record survives."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 48), "white").save(images / "good.png")
    Image.new("RGB", (64, 48), "gray").save(images / "good2.png")
    Image.new("1", (14000, 14000)).save(images / "bomb.png")  # 196 Mpixel > 2 x PIL limit: an error
    Image.new("RGB", (64, 48), "black").save(tmp_path / "secret.png")  # outside the image folder
    ann = lambda i, caption="A caption.", **kw: {"image_id": i, "caption_no_index": caption, "paragraph": [],  # noqa
                                                  "mention": [], **kw}
    data = {"images": [{"id": 1, "file_name": "good.png", "figure_type": "Graph Plot", "ocr": ["x"]},
                       {"id": 2, "file_name": "bomb.png", "figure_type": "Graph Plot", "ocr": []},
                       {"id": 3, "file_name": "good2.png", "figure_type": "Bar Chart", "ocr": 5},
                       {"id": 4, "file_name": "good2.png", "figure_type": "Bar Chart", "ocr": []},
                       {"id": 1, "file_name": "good2.png", "figure_type": "Equation", "ocr": []},
                       {"id": 5, "file_name": "../secret.png", "figure_type": "Equation", "ocr": []},
                       {"id": 6, "file_name": str(tmp_path / "secret.png"), "figure_type": "Equation", "ocr": []}],
            "annotations": [ann(1), ann(2), ann(3), ann(4, paragraph=7), ann(1, caption="second annotation"), ann(5),
                            ann(6)]}
    (tmp_path / "train.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    assert main(["scicap", "--json", str(tmp_path / "train.json"), "--images", str(images), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"] == {"train": 1}
    assert summary["report"]["skipped_by_reason"] == {"decompression_bomb": 1, "wrong_field_type": 2,
                                                      "duplicate_id": 1, "duplicate_annotation": 1,
                                                      "path_outside_root": 2}
    skipped = {(s["id"], s["reason"]) for s in summary["report"]["skipped"]}
    assert ("3", "wrong_field_type") in skipped and ("4", "wrong_field_type") in skipped
    assert datasets.load_from_disk(str(out))["train"][0]["caption"] == "A caption."
    assert "decompression_bomb" in (out / "README.md").read_text()
    # the user may allow paths outside the folder explicitly
    assert main(["scicap", "--json", str(tmp_path / "train.json"), "--images", str(images), "--out",
                 str(tmp_path / "out2"), "--allow-images-outside"]) == 0
    assert json.loads((tmp_path / "out2" / "summary.json").read_text())["splits"] == {"train": 3}


def test_all_invalid_input_writes_its_summary_and_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "train.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "none.png"}],
                                                     "annotations": [{"image_id": 1, "caption_no_index": 3}]}))
    out = tmp_path / "out"
    assert main(["scicap", "--json", str(tmp_path / "train.json"), "--images", str(tmp_path), "--out", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scitune-data")]  # no progress bar
    assert len(err) == 1 and "no usable item" in err[0] and "wrong_field_type 1" in err[0]
    assert json.loads((out / "summary.json").read_text())["report"]["skipped_by_reason"] == {"wrong_field_type": 1}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["scicap", "--json", str(tmp_path / "list.json"), "--images", str(tmp_path), "--out", str(out)]) == 2
    assert "not a SciCap challenge file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["synthetic", "--n", "-5"], ["synthetic", "--n", "0"], ["sqa-synthetic", "--n", "0"]])
def test_cli_counts_must_be_positive(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "--n must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
