"""Canonical ids and the CLI spec language."""

from __future__ import annotations

import pytest

from carbench.degradations import Bpg, DoubleJpeg, Hevc, Jpeg, expand, expand_all, from_id

IDS = [
    "jpeg-q1",
    "jpeg-q10",
    "jpeg-q100-444",
    "jpeg-q10-422",
    "jpeg-q5-gray",
    "jpeg2-q5-q95",
    "jpeg2-q10-q30-s4x4",
    "jpeg2-q10-q30-s4x0",
    "jpeg2-q90-q10-s8x8-444",
    "bpg-qp30",
    "bpg-qp40-444",
    "bpg-qp30-444-rgb-b10-jctvc-m9",
    "hevc-qp30",
    "hevc-qp50-444",
]


@pytest.mark.parametrize("did", IDS)
def test_id_round_trip(did):
    assert from_id(did).id == did


def test_non_canonical_ids_are_refused():
    with pytest.raises(ValueError, match="not canonical"):
        from_id("jpeg-q10-420")
    with pytest.raises(ValueError, match="unknown degradation"):
        from_id("vvc-qp30")


def test_expand_single():
    assert [d.id for d in expand("jpeg:q=5,10,20")] == ["jpeg-q5", "jpeg-q10", "jpeg-q20"]
    assert expand("jpeg:q=10,chroma=444") == [Jpeg(10, "444")]


def test_expand_double_nine_pairs_with_shift():
    degs = expand("jpeg2:q1=10,30,50,q2=10,30,50,shift=4")
    assert len(degs) == 9
    assert degs[0] == DoubleJpeg(10, 10, 4, 4)
    assert {(d.q1, d.q2) for d in degs} == {(a, b) for a in (10, 30, 50) for b in (10, 30, 50)}
    assert all(d.id.endswith("-s4x4") for d in degs)


def test_expand_unequal_shift_and_pairs():
    assert expand("jpeg2:q1=10,q2=90,shift=4x0") == [DoubleJpeg(10, 90, 4, 0)]
    ids = [d.id for d in expand("jpeg2:pairs=5/95,10/90,90/10,shift=0,8")]
    assert ids == [
        "jpeg2-q5-q95",
        "jpeg2-q5-q95-s8x8",
        "jpeg2-q10-q90",
        "jpeg2-q10-q90-s8x8",
        "jpeg2-q90-q10",
        "jpeg2-q90-q10-s8x8",
    ]


def test_expand_bpg_and_hevc():
    assert expand("bpg:qp=30,40,50") == [Bpg(30), Bpg(40), Bpg(50)]
    assert expand("hevc:qp=30,chroma=444") == [Hevc(30, "444")]
    assert [d.id for d in expand("bpg:qp=30,bits=10,encoder=jctvc")] == ["bpg-qp30-b10-jctvc"]


def test_expand_all_dedups_in_order():
    assert [d.id for d in expand_all(["jpeg:q=10,20", "jpeg-q10", "jpeg:q=5"])] == [
        "jpeg-q10",
        "jpeg-q20",
        "jpeg-q5",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("jpeg:q=0", "`q` of jpeg takes int 1-100, got '0'"),
        ("jpeg:q=101", "`q` of jpeg takes int 1-100, got '101'"),
        ("jpeg:q=ten", "`q` of jpeg takes int 1-100, got 'ten'"),
        ("jpeg:qf=10", "unknown option `qf` for jpeg \\(known: q, chroma\\); did you mean `q`"),
        ("jpeg:", "jpeg needs q="),
        ("vvc:qp=30", "unknown degradation kind 'vvc'"),
        ("jpeg2:q1=10", "jpeg2 needs q1"),
        ("jpeg2:q1=10,q2=20,shift=a", "shift must be N or ROWSxCOLS"),
        ("bpg:qp=52", "`qp` of bpg takes int 0-51"),
        ("jpeg:10", "has no parameter name"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        expand(spec)
