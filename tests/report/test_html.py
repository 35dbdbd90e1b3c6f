"""The HTML report's gallery: overlays, the clean top-k outline and the class names."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from attrib_audit.arrays import decode_array, encode_array
from attrib_audit.models import sample_model
from attrib_audit.pipeline import AuditConfig, audit
from attrib_audit.render import grey_image, overlay
from attrib_audit.report.html import (
    OUTLINE,
    gallery_k,
    map_picture_uri,
    map_scale,
    outline,
    render_html,
    topk_pixels,
    topk_region,
)

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _decode_uri(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_outline_of_a_block_is_its_ring():
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 3:6] = True
    expected = mask.copy()
    expected[3, 4] = False  # the one pixel whose 4 neighbours are all in the block
    assert outline(mask).sum() == 8
    np.testing.assert_array_equal(outline(mask), expected)


def test_a_mask_at_the_image_edge_is_closed_by_it():
    ring = np.ones((8, 8), dtype=bool)
    ring[1:-1, 1:-1] = False
    np.testing.assert_array_equal(outline(np.ones((8, 8), dtype=bool)), ring)
    assert not outline(np.zeros((8, 8), dtype=bool)).any()


def test_an_overlay_of_a_zero_map_is_the_grey_image():
    rng = np.random.default_rng(0)
    x = rng.random((3, 6, 5))
    grey = grey_image(x, (0.0, 1.0))
    assert grey.shape == (6, 5)
    for scale in (1.0, 0.0):
        out = overlay(grey, np.zeros((6, 5)), scale)
        np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_the_overlay_colours_where_the_map_is_and_shares_its_scale():
    grey = np.full((4, 4), 0.5)
    m = np.zeros((4, 4))
    m[1, 2] = -2.0  # absolute values
    out = overlay(grey, m, 2.0)
    assert not np.allclose(out[1, 2], 0.5)
    np.testing.assert_array_equal(np.delete(out.reshape(16, 3), 6, axis=0), 0.5)
    assert map_scale(np.ones((4, 4)), 3 * np.ones((4, 4))) == pytest.approx(3.0)


def test_the_top_k_region_is_the_metrics_top_k_and_pools_large_maps():
    rng = np.random.default_rng(1)
    m = rng.random((8, 8)).astype(np.float32)
    mask = topk_pixels(m, 5)
    assert mask.sum() == 5 and m[mask].min() > m[~mask].max()
    np.testing.assert_array_equal(topk_region(m, 5, cell=1), mask)
    m = np.zeros((8, 8), dtype=np.float32)
    m[4:6, 2:4] = 1.0  # the mass sits in one 2x2 cell
    region = topk_region(m, 4, cell=2)
    np.testing.assert_array_equal(region, m > 0)


def test_k_is_the_audits_else_an_eighth_of_the_pixels():
    assert gallery_k({"config": {"k": 10}}, 64) == 10
    assert gallery_k({"config": {"k": None}}, 64) == 8
    assert gallery_k({"config": {}}, 800) == 100
    assert gallery_k({"config": {"k": 100}}, 64) == 64


def test_the_map_picture_outlines_the_mask_in_cyan_after_upscaling():
    rng = np.random.default_rng(2)
    grey = rng.random((8, 8)) * 0.5
    m = np.zeros((8, 8))
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 3:6] = True
    pic = _decode_uri(map_picture_uri(grey, m, 1.0, mask, min_side=32))
    assert pic.shape == (32, 32, 3)
    line = outline(mask.repeat(4, 0).repeat(4, 1))
    cyan = np.all(pic == np.array(OUTLINE) * 255, axis=2)
    np.testing.assert_array_equal(cyan, line)
    assert line.sum() == 4 * 12 - 4  # one pixel wide: the ring of a 12x12 square


@pytest.fixture(scope="module")
def small_report():
    return audit(
        AuditConfig(
            model=str(sample_model("digits-cnn", "pt")),
            samples=6,
            steps=2,
            methods=["sm"],
            attacks=["ifia-topk"],
            epsilons=[8 / 255],
            classes=NAMES,
            out=None,
        )
    )


def _item(report, rng):
    s = next(s for s in report["samples"] if s["transfer_from"] is None)
    x = rng.random((1, 8, 8)).astype(np.float32)
    m0, m1 = rng.random((8, 8)), rng.random((8, 8))
    return {
        **{k: s[k] for k in ("index", "prediction", "attack", "epsilon")},
        "label": s["label"],
        "x": encode_array(x),
        "x_adv": encode_array(x),
        "map": encode_array(m0),
        "map_adv": encode_array(m1),
        "topk_intersection": s["topk_intersection"],
    }, s


def test_the_gallery_shows_overlays_outline_and_class_names(small_report):
    rng = np.random.default_rng(3)
    item, s = _item(small_report, rng)
    html = render_html(small_report, {"sm": [item]})
    m0, m1 = decode_array(item["map"]), decode_array(item["map_adv"])
    vr = small_report["model"]["card"]["value_range"]
    grey = grey_image(decode_array(item["x"]), vr)
    k = small_report["config"]["k"]
    mask = topk_pixels(m0, k)
    for m in (m0, m1):
        assert map_picture_uri(grey, m, map_scale(m0, m1), mask, min_side=192) in html
    assert 'alt="clean map over the image"' in html
    assert 'alt="perturbed map over the perturbed image"' in html
    assert f"top-{k} pixels" in html
    assert f"label and prediction: <b>{NAMES[s['prediction']]}</b>" in html
    assert "the perturbed image is predicted the same" in html


def test_the_gallery_shows_only_what_the_item_has(small_report):
    rng = np.random.default_rng(4)
    item, s = _item(small_report, rng)
    other = (s["prediction"] + 1) % 10
    differs = {**item, "label": other, "index": 10_000}  # in no sample: no kept fact
    unlabelled = {k: v for k, v in item.items() if k != "label"}
    html = render_html(small_report, {"sm": [differs]})
    assert f"prediction: <b>{NAMES[s['prediction']]}</b> · label: <b>{NAMES[other]}</b>" in html
    assert "predicted the same" not in html and "predicted differently" not in html
    html = render_html(small_report, {"sm": [unlabelled]})
    assert "label" not in html.split('<section id="gallery">')[1].split("</section>")[0]
