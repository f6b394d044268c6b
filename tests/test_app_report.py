"""The HTML index references every figure and renders the tables."""

from bayesdepth.app.report import write_index


def test_index_references_figures_and_tables(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    (tmp_path / "summary.csv").write_text("name,mean\nw,0.5\n")
    path = write_index(tmp_path, "Run <1>", [("a.png", "the first figure")], ["a note"],
                       [("Summary", "summary.csv")])
    page = path.read_text()
    assert path.name == "index.html"
    assert "<img src='a.png'" in page and "the first figure" in page
    assert "<td>0.5</td>" in page and "Run &lt;1&gt;" in page and "a note" in page
