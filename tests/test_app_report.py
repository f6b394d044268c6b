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


def test_banners_come_first_and_say_whether_chains_converged(tmp_path):
    import arviz as az
    import numpy as np
    from bayesdepth.inference.diagnostics import convergence

    from bayesdepth.app.report import chains_page, convergence_banner

    rng = np.random.default_rng(0)
    stuck = az.from_dict(posterior={"f_probe": rng.normal(size=(4, 200, 2))
                                    + np.arange(4)[:, None, None]})
    mixed = az.from_dict(posterior={"f_probe": rng.normal(size=(4, 2000, 2))})
    bad, good = convergence(stuck), convergence(mixed)
    ok, text = convergence_banner(bad, ["f_probe"])
    assert not ok and "NOT converged on f_probe" in text and "f_probe[0] (R-hat" in text
    ok, text = convergence_banner(good, ["f_probe"], "4 SGLD chains")
    assert ok and text.startswith("The 4 SGLD chains converged on f_probe")
    (tmp_path / "summary.csv").write_text("name,mean\nf_probe[0],0.5\n")
    (tmp_path / "summary_appendix.csv").write_text("name,mean\nw,0.1\n")
    page = chains_page(tmp_path, "run", bad, ["f_probe"], notes=["a note"]).read_text()
    assert page.index("banner bad") < page.index("a note") < page.index("Headline")
    assert page.index("Headline: function space") < page.index("Appendix: weight space")
