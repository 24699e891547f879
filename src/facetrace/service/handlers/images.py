"""DetectFaces, CompareFaces: image operations that touch no collection.

Only what facetrace estimates is returned (BoundingBox, Confidence, Landmarks, Pose, Quality); asking for an
attribute it does not estimate (AGE_RANGE, EMOTIONS, ...) is an InvalidParameterException rather than an
invented value. ALL means the same as DEFAULT.
"""

from __future__ import annotations

from typing import Any

from facetrace import shapes
from facetrace.service.operations import Context, Permission, operation
from facetrace.service.shapes import detail_attributes, given

JSON = dict[str, Any]


@operation("DetectFaces", Permission.READ, collection_param=None)
def detect_faces(ctx: Context, request: JSON) -> JSON:
    detail_attributes(request.get("Attributes"))
    faces = ctx.gallery.detect_faces(ctx.images.load(request["Image"]))
    return {"FaceDetails": [shapes.face_detail(face.detail) for face in faces]}


@operation("CompareFaces", Permission.READ, collection_param=None)
def compare_faces(ctx: Context, request: JSON) -> JSON:
    source = ctx.images.load(request["SourceImage"])
    target = ctx.images.load(request["TargetImage"])
    result = ctx.gallery.compare_faces(
        source,
        target,
        caller=ctx.caller,
        **given(request, {"SimilarityThreshold": "threshold", "QualityFilter": "quality_filter"}),
    )
    return shapes.compare_faces(result)
