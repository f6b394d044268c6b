"""CSV reading: values, errors naming row and column, the user's file left untouched."""

import pytest
import torch

from bayesdepth.app.tabular import read_csv


def write(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_reads_features_and_target(tmp_path):
    path = write(tmp_path, "a,label,b\n1,0,2.5\n3,1,4\n\n")
    before = path.read_bytes()
    table = read_csv(path, target="label", dtype=torch.float64)
    assert table.feature_names == ("a", "b")
    assert table.x.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert table.y.tolist() == [0.0, 1.0]
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("text", "target", "match"),
    [
        ("", "y", "empty"),
        ("x,y\n", "y", "no data rows"),
        ("x,z\n1,2\n", "y", "column\\(s\\) .y. not found; columns are x, z"),
        ("x,y\n1,2\n3,\n", "y", "missing value in row 3, column 'y'"),
        ("x,y\n1,2\nabc,4\n", "y", "non-numeric value 'abc' in row 3, column 'x'"),
        ("x,y\n1,2\n1,2,3\n", "y", "row 3 has 3 cells"),
        ("x,y\nnan,1\n", "y", "non-finite value 'nan' in row 2, column 'x'"),
        ("y\n1\n", "y", "at least one feature column"),
    ],
)
def test_errors_name_row_and_column(tmp_path, text, target, match):
    with pytest.raises(ValueError, match=match):
        read_csv(write(tmp_path, text), target=target)


def test_byte_order_mark_encoding_and_overflow(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa,y\n1,2\n")
    assert read_csv(path, target="y").feature_names == ("a",)  # not '\ufeffa'
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("a,y\n1,2\n", encoding="utf-16")
    with pytest.raises(ValueError, match=r"utf16\.csv: not a UTF-8 text file"):
        read_csv(utf16, target="y")
    big = write(tmp_path, "a,y\n1,2\n3,1e308\n")
    with pytest.raises(ValueError, match=r"1e\+308 in row 3, column 'y' does not fit in "
                       r"torch\.float32"):
        read_csv(big, target="y")
    assert read_csv(big, target="y", dtype=torch.float64).y[1] == 1e308


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_csv(tmp_path / "nope.csv", target="y")
