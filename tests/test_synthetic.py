import io
import shutil
import subprocess
from collections import Counter

import pytest
from PIL import Image

from modeling_scitune.data import FIGURE_TYPES
from modeling_scitune.data.synthetic import generate_synthetic_records, make_synthetic_record, split_of


@pytest.fixture(scope="module")
def sample():
    return list(generate_synthetic_records(100, seed=0, workers=2, progress=False))


def test_types_are_balanced_in_every_split(sample):
    assert Counter(r.figure_type for r in sample) == {t: 20 for t in FIGURE_TYPES}
    by_split = Counter((split_of(i, 100), r.figure_type) for i, r in enumerate(sample))
    for split, size in (("train", 80), ("validation", 10), ("test", 10)):
        assert [by_split[(split, t)] for t in FIGURE_TYPES] == [size // 5] * 5


def test_generation_is_deterministic_and_varied(sample):
    again = make_synthetic_record(7, seed=0)
    assert again.image == sample[7].image and again.caption == sample[7].caption
    assert make_synthetic_record(7, seed=1).image != sample[7].image
    sizes = {Image.open(io.BytesIO(r.image)).size for r in sample}
    assert len(sizes) > 20  # figure sizes and dpi vary
    assert len({r.meta["style"] for r in sample}) >= 5 and len({r.meta["font"] for r in sample}) == 3
    assert len({r.caption for r in sample}) == len(sample)


def test_captions_describe_what_is_drawn(sample):
    for record in sample:
        meta = record.meta
        if record.figure_type == "Bar Chart":
            assert f"{meta['largest']} is the highest" in record.caption
            assert meta["values"][meta["categories"].index(meta["largest"])] == max(meta["values"])
        elif record.figure_type == "Graph Plot":
            assert all(f"{s} {t}" in record.caption for s, t in zip(meta["series"], meta["trends"]))
        elif record.figure_type == "Node Diagram":
            assert f"{meta['edge_count']}" in record.caption
        assert record.paragraphs and record.mentions and record.ocr


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed (make setup installs it)")
def test_tesseract_reads_the_axis_labels_in_most_figures(sample, tmp_path):
    """Horizontal axis text (x-axis label; bar categories) is legible to OCR: rotated y labels are not checked."""
    plots = [r for r in sample if r.figure_type in ("Graph Plot", "Scatterplot", "Bar Chart")][:15]
    hits = 0
    for record in plots:
        path = tmp_path / f"{record.figure_id}.png"
        image = Image.open(io.BytesIO(record.image))
        image.resize((image.width * 2, image.height * 2)).save(path)
        text = subprocess.run(["tesseract", str(path), "-", "--psm", "11"], capture_output=True, text=True).stdout
        found = "".join(text.split()).lower()
        if record.figure_type == "Bar Chart":
            labels = record.meta["categories"]
            hits += sum(label.lower() in found for label in labels) >= len(labels) / 2
        else:
            hits += record.meta["x_label"].split(" (")[0].lower().replace(" ", "") in found
    assert hits >= 0.7 * len(plots), f"tesseract read the axis labels in only {hits}/{len(plots)} figures"
