"""The papers' numbers (mil_core.paper) agree with the values the notebooks printed before."""
from mil_core import paper


def test_table1_rows_and_columns():
    t = paper.mil_table1("Places-50", ("SinGAN", "ConSinGAN", "MIL single", "MIL dataset"))
    assert list(t.columns) == ["SIFID", "mSIFID", "diversity", "min/image"]
    assert t.loc["SinGAN"].tolist() == [0.09, 0.15, 0.52, 60]
    assert t.loc["MIL dataset"].tolist() == [0.05, 0.07, 0.50, 5]
    assert paper.mil_table1("LSUN-50").loc["HP-VAE-GAN", "SIFID"] == 0.40


def test_table2_strings():
    t = paper.mil_table2()
    assert t.loc["MIL mini-batch (1–5 images)"].tolist() == ["0.03–0.04", "0.07–0.08",
                                                             "0.66–0.73", "—"]
    assert t.loc["MIL single image", "SIFID"] == "0.03"
