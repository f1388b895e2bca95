from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_core.datasets import (
    UNLABELLED,
    CollectionFormatError,
    CollectionItem,
    detect_layout,
    read_collection,
    read_collection_report,
)


def _touch(root: Path, relpath: str) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xd9")  # the reader never decodes images
    return path


def _write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text, encoding="utf-8")


def test_folders_layout_is_recursive_sorted_and_ignores_hidden(tmp_path: Path) -> None:
    _touch(tmp_path, "eiffel/b.JPG")
    _touch(tmp_path, "eiffel/a.jpeg")
    _touch(tmp_path, "eiffel/night/c.webp")
    _touch(tmp_path, "eiffel/.hidden.jpg")
    _touch(tmp_path, "eiffel/.cache/d.jpg")
    _touch(tmp_path, "colosseum/x.png")
    _touch(tmp_path, "colosseum/notes.txt")
    _touch(tmp_path, ".trash/y.jpg")
    _touch(tmp_path, "stray.jpg")

    result = read_collection_report(tmp_path)

    assert result.layout == "folders" == detect_layout(tmp_path)
    assert [item.relpath for item in result.items] == [
        "colosseum/x.png",
        "eiffel/a.jpeg",
        "eiffel/b.JPG",
        "eiffel/night/c.webp",
    ]
    assert [item.landmark for item in result.items] == ["colosseum", "eiffel", "eiffel", "eiffel"]
    assert all(item.split is None and item.path.is_absolute() for item in result.items)
    assert result.items[0].path == (tmp_path / "colosseum/x.png").resolve()
    assert result.landmarks == ("colosseum", "eiffel")
    assert len(result.skipped) == 2
    assert any("notes.txt" in reason for reason in result.skipped)
    assert any("stray.jpg" in reason for reason in result.skipped)


def test_labels_csv_layout_reads_splits_and_skips_missing_files(tmp_path: Path) -> None:
    _touch(tmp_path, "imgs/1.jpg")
    _touch(tmp_path, "imgs/2.jpg")
    _touch(tmp_path, "other/3.jpg")
    _write(
        tmp_path,
        "labels.csv",
        "\ufeffimage,landmark,split\n"
        "other/3.jpg,b,\n"
        "imgs/1.jpg,a,query\n"
        "./imgs/2.jpg, a ,train\n"
        "imgs/missing.jpg,a,\n",
    )

    result = read_collection_report(tmp_path)

    assert result.layout == "labels_csv"
    assert result.items == (
        CollectionItem((tmp_path / "imgs/1.jpg").resolve(), "imgs/1.jpg", "a", "query"),
        CollectionItem((tmp_path / "imgs/2.jpg").resolve(), "imgs/2.jpg", "a", "train"),
        CollectionItem((tmp_path / "other/3.jpg").resolve(), "other/3.jpg", "b", None),
    )
    assert len(result.skipped) == 1 and "imgs/missing.jpg" in result.skipped[0]
    assert read_collection(tmp_path) == list(result.items)


def test_labels_csv_without_split_column(tmp_path: Path) -> None:
    _touch(tmp_path, "a/1.jpg")
    _write(tmp_path, "labels.csv", "landmark,image\nA,a/1.jpg\n")
    [item] = read_collection(tmp_path)
    assert (item.relpath, item.landmark, item.split) == ("a/1.jpg", "A", None)


def test_labels_csv_wins_over_folders(tmp_path: Path) -> None:
    _touch(tmp_path, "folder_name/1.jpg")
    _write(tmp_path, "labels.csv", "image,landmark\nfolder_name/1.jpg,real_name\n")
    assert detect_layout(tmp_path) == "labels_csv"
    assert read_collection(tmp_path)[0].landmark == "real_name"
    assert read_collection(tmp_path, layout="folders")[0].landmark == "folder_name"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,split\na/1.jpg,\n", "landmark"),
        ("picture,label\na/1.jpg,x\n", "image"),
        ("", "image"),
        ("image,landmark\n,x\n", "empty image"),
        ("image,landmark\n../outside.jpg,x\n", "leaves"),
        ("image,landmark\na/../../outside.jpg,x\n", "leaves"),
        ("image,landmark\n/etc/passwd,x\n", "relative"),
        ("image,landmark\na/1.jpg,x\na/1.jpg,y\n", "twice"),
    ],
)
def test_bad_labels_csv_raises(tmp_path: Path, text: str, message: str) -> None:
    _touch(tmp_path, "a/1.jpg")
    _write(tmp_path, "labels.csv", text)
    with pytest.raises(CollectionFormatError, match=message):
        read_collection(tmp_path)


def test_path_traversal_is_refused_even_when_the_file_exists(tmp_path: Path) -> None:
    root = tmp_path / "collection"
    _touch(tmp_path, "secret.jpg")
    _touch(root, "a/1.jpg")
    _write(root, "labels.csv", "image,landmark\na/1.jpg,x\n../secret.jpg,x\n")
    with pytest.raises(CollectionFormatError, match="leaves the collection"):
        read_collection(root)


def test_duplicate_row_with_same_label_is_skipped_not_fatal(tmp_path: Path) -> None:
    _touch(tmp_path, "a/1.jpg")
    _write(tmp_path, "labels.csv", "image,landmark\na/1.jpg,x\na/1.jpg,x\n")
    result = read_collection_report(tmp_path)
    assert len(result.items) == 1
    assert result.skipped == ("a/1.jpg: listed twice",)


def test_gldv2_nested_path_rule_both_roots_and_missing_files(tmp_path: Path) -> None:
    _touch(tmp_path, "train/1/2/3/123abc.jpg")  # under train/
    _touch(tmp_path, "4/5/6/456def.jpg")  # directly under the root, as the tar files unpack
    _touch(tmp_path, "7/8/9/789abc.png")  # wrong extension: GLDv2 images are .jpg
    _touch(tmp_path, "index/a/b/c/abc999.jpg")
    _write(
        tmp_path,
        "train.csv",
        "id,url,landmark_id\n"
        "456def,http://x/2,7\n"
        "123abc,http://x/1,42\n"
        "789abc,http://x/3,42\n"
        "000fff,http://x/4,42\n",
    )
    _write(tmp_path, "index.csv", "id\nabc999\nabc000\n")

    result = read_collection_report(tmp_path)

    assert result.layout == "gldv2" == detect_layout(tmp_path)
    assert [(i.relpath, i.landmark, i.split) for i in result.items] == [
        ("4/5/6/456def.jpg", "7", None),
        ("index/a/b/c/abc999.jpg", UNLABELLED, "index"),
        ("train/1/2/3/123abc.jpg", "42", None),
    ]
    assert sorted(reason.split(":")[0] for reason in result.skipped) == ["000fff", "789abc", "abc000"]


def test_gldv2_index_only_with_labels(tmp_path: Path) -> None:
    _touch(tmp_path, "index/0/1/2/012345.jpg")
    _write(tmp_path, "index.csv", "id,landmark_id\n012345,9\n")
    [item] = read_collection(tmp_path)
    assert (item.relpath, item.landmark, item.split) == ("index/0/1/2/012345.jpg", "9", "index")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,url\nabc,http://x\n", "landmark_id"),
        ("id,url,landmark_id\n../../x,http://x,1\n", "not a GLDv2 image id"),
        ("id,url,landmark_id\nab,http://x,1\n", "not a GLDv2 image id"),
        ("id,url,landmark_id\nabcdef,http://x,\n", "empty landmark_id"),
    ],
)
def test_bad_gldv2_csv_raises(tmp_path: Path, text: str, message: str) -> None:
    _touch(tmp_path, "a/b/c/abcdef.jpg")
    _write(tmp_path, "train.csv", text)
    with pytest.raises(CollectionFormatError, match=message):
        read_collection(tmp_path)


def test_gldv2_with_no_file_present_raises_and_says_why(tmp_path: Path) -> None:
    _write(tmp_path, "train.csv", "id,url,landmark_id\nabcdef,http://x,1\n")
    with pytest.raises(CollectionFormatError, match=r"no images found.*1 rows/files skipped.*abcdef"):
        read_collection(tmp_path)


def test_empty_or_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CollectionFormatError, match=r"no labels\.csv"):
        detect_layout(tmp_path)
    with pytest.raises(CollectionFormatError, match="does not exist"):
        read_collection(tmp_path / "nope")
    (tmp_path / "empty_landmark").mkdir()
    with pytest.raises(CollectionFormatError, match="no images found"):
        read_collection(tmp_path)
    with pytest.raises(CollectionFormatError, match="unknown layout"):
        read_collection(tmp_path, layout="zip")  # type: ignore[arg-type]


def test_output_is_deterministic_across_calls(tmp_path: Path) -> None:
    for name in ("z/1.jpg", "a/2.jpg", "m/k/3.jpg", "a/10.jpg"):
        _touch(tmp_path, name)
    first, second = read_collection(tmp_path), read_collection(tmp_path)
    assert first == second
    assert [item.relpath for item in first] == sorted(item.relpath for item in first)


def test_labels_csv_empty_landmark_is_unlabelled(tmp_path: Path) -> None:
    _touch(tmp_path, "sf/0000.jpg")
    _touch(tmp_path, "sf/0001.jpg")
    _write(tmp_path, "labels.csv", "image,landmark\nsf/0000.jpg,\nsf/0001.jpg,Tower\n")
    items = read_collection(tmp_path)
    assert [(item.relpath, item.landmark) for item in items] == [
        ("sf/0000.jpg", UNLABELLED),
        ("sf/0001.jpg", "Tower"),
    ]


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg")
    _touch(tmp_path, "b.png")
    _write(tmp_path, "notes.txt", "hello")
    assert detect_layout(tmp_path) == "flat"
    report = read_collection_report(tmp_path)
    assert [(item.relpath, item.landmark) for item in report.items] == [
        ("a.jpg", UNLABELLED),
        ("b.png", UNLABELLED),
    ]
    assert any("notes.txt" in reason for reason in report.skipped)


def test_phone_photo_files_are_part_of_a_folder_collection(tmp_path: Path) -> None:
    """iPhones name their photos IMG_0001.HEIC: HEIC, HEIF and AVIF files are read like JPEGs."""
    for name in ("tower/IMG_0001.HEIC", "tower/b.heif", "bridge/c.avif", "bridge/d.jpg", "bridge/e.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    items = read_collection(tmp_path)
    assert [(item.relpath, item.landmark) for item in items] == [
        ("bridge/c.avif", "bridge"),
        ("bridge/d.jpg", "bridge"),
        ("tower/IMG_0001.HEIC", "tower"),
        ("tower/b.heif", "tower"),
    ]
