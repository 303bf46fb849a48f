"""Benchmark images in xlsa17 row order, listed as tar members read in place."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsl_scale.core.errors import DataError
from zsl_scale.features.inputs import list_images, read_bytes
from zsl_scale.features.xlsa17 import image_list_text, write_image_list, xlsa17_images


def test_flo_rows_follow_setid_order_and_labels(flo_dir: Path) -> None:
    """Row r of the listing is row r of res101_efflite0.mat: same file, same label (README's order rule)."""
    from scipy.io import loadmat

    images = xlsa17_images(flo_dir)
    mat = loadmat(str(flo_dir / "res101_efflite0.mat"))
    files = [str(f[0][0]).rsplit("/", 1)[1] for f in mat["image_files"]]
    assert len(images) == 8189 == len(files)
    assert [Path(im.member).name for im in images] == files
    assert np.array_equal([im.label + 1 for im in images], mat["labels"].ravel().astype(int))
    assert images[0].image_id("flower") == "flower_001/image_06765"


def test_list_file_reads_tar_members_in_place(tmp_path: Path) -> None:
    tar_path = tmp_path / "imgs.tar"
    with tarfile.open(tar_path, "w") as tf:
        for name, colour in (("d/a.jpg", (255, 0, 0)), ("d/b.jpg", (0, 0, 255))):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), colour).save(buf, format="JPEG")
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tf.addfile(info, io.BytesIO(buf.getvalue()))
    lst = tmp_path / "list.tsv"
    lst.write_text("path\twnid\nimgs.tar::d/b.jpg\tc2\nimgs.tar::d/a.jpg\tc1\n")
    kind, refs = list_images(lst)
    assert kind == "list" and [r.image_id for r in refs] == ["c1/a", "c2/b"]
    blue = Image.open(io.BytesIO(read_bytes(refs[1].path, refs[1].offset, refs[1].size))).convert("RGB")
    assert blue.getpixel((4, 4))[2] > 200 and blue.getpixel((4, 4))[0] < 60
    lst.write_text("imgs.tar::d/zz.jpg\tc1\n")
    with pytest.raises(DataError, match=r"no member 'd/zz\.jpg'"):
        list_images(lst)


def test_image_list_text_round_trips(flo_dir: Path, tmp_path: Path) -> None:
    images = xlsa17_images(flo_dir)[:5]
    assert image_list_text("/x.tar", images, "flower").splitlines()[1] == "/x.tar::jpg64/image_06765.jpg\tflower_001"
    path = write_image_list(tmp_path / "l.tsv", flo_dir / "jpg64.tar", images, "flower")
    _, refs = list_images(path)
    assert sorted(r.image_id for r in refs) == sorted(im.image_id("flower") for im in images)
