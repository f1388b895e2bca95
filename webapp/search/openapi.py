"""The OpenAPI 3.1 document of the JSON API, served at ``/api/schema/``; hand-written, and the contract
test (tests/e2e/test_api_contract.py) validates real responses of every JSON endpoint against it."""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI"]

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_LANDMARK = {
    "type": ["object", "null"],
    "required": ["id", "name"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    "additionalProperties": False,
}
_POSITION = {
    "type": ["object", "null"],
    "required": ["latitude", "longitude"],
    "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
    "additionalProperties": False,
}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "bad input: a missing field, a malformed or out-of-range parameter, a non-image file",
        404: "no such image",
        409: "the asked re-rank method has no data, or filters need the collection rebuilt",
        413: "a file over UPLOAD_MAX_BYTES",
        503: "Milvus unreachable or the active model's collection missing",
    }
    return {str(code): _json(_ERROR, meaning[code]) for code in codes}


_PARAMETERS: dict[str, dict[str, object]] = {
    "k": {"type": "integer", "minimum": 1, "maximum": 100, "description": "results (default SEARCH_TOP_K)"},
    "rerank": {"type": "string", "enum": ["sift", "vlad", "patches", "none"]},
    "landmark": {"type": "integer", "description": "only images of this landmark id"},
    "taken_after": {"type": "string", "format": "date", "description": "EXIF capture date >= (UTC)"},
    "taken_before": {"type": "string", "format": "date", "description": "EXIF capture date <= (UTC)"},
    "lat": {"type": "number", "minimum": -90, "maximum": 90},
    "lon": {"type": "number", "minimum": -180, "maximum": 180},
    "radius_m": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 5_000_000,
        "description": "with lat and lon: only images taken within this many metres",
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Landmark photo search",
        "version": "1",
        "description": "Search a landmark collection by photo: ranked matches with their evidence and the "
        "predicted landmark. Filters are applied by Milvus before the top-k.",
    },
    "paths": {
        "/api/search/": {
            "post": {
                "summary": "Search by photo",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {
                                    "image": {"type": "string", "format": "binary"},
                                    **_PARAMETERS,
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/SearchResponse"}, "ranked results"),
                    **_errors(400, 409, 413, 503),
                },
            }
        },
        "/api/search/batch/": {
            "post": {
                "summary": "Search several photos at once (at most SEARCH_BATCH_MAX)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["images"],
                                "properties": {
                                    "images": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                    },
                                    **_PARAMETERS,
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/BatchResponse"}, "one search per photo"),
                    **_errors(400, 503),
                },
            }
        },
        "/api/images/{image_id}/similar/": {
            "get": {
                "summary": "More like this: search from a collection image, itself excluded",
                "parameters": [
                    {"name": "image_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    *[
                        {"name": name, "in": "query", "required": False, "schema": schema}
                        for name, schema in _PARAMETERS.items()
                    ],
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/SearchResponse"}, "ranked results"),
                    **_errors(400, 404, 409, 503),
                },
            }
        },
        "/api/collection/progress/": {
            "get": {
                "summary": "Indexing counts",
                "parameters": [
                    {
                        "name": "ids",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "comma-separated image ids",
                    }
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Progress"}, "counts"),
                    **_errors(400),
                },
            }
        },
        "/api/images/": {
            "post": {
                "summary": "Add photos to the collection (API token with catalog.add_image)",
                "security": [{"token": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["images"],
                                "properties": {
                                    "images": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                    },
                                    "landmark": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Upload"}, "registered (and queued) images"),
                    "400": _json(
                        {"oneOf": [{"$ref": "#/components/schemas/Upload"}, _ERROR]}, "nothing readable"
                    ),
                    "401": _json(_ERROR, "no or an invalid API token"),
                    "403": _json(_ERROR, "the token's user may not do this"),
                    "413": _json(
                        {"$ref": "#/components/schemas/Upload"}, "the file is over UPLOAD_MAX_BYTES"
                    ),
                },
            }
        },
        "/api/evaluations/{run_id}/progress/": {
            "get": {
                "summary": "An evaluation run's progress (staff)",
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status", "stage", "done", "total", "error"],
                            "additionalProperties": False,
                            "properties": {
                                "status": {"type": "string"},
                                "stage": {"type": "string"},
                                "done": {"type": "integer"},
                                "total": {"type": "integer"},
                                "error": {"type": "string"},
                            },
                        },
                        "progress",
                    )
                },
            }
        },
        "/api/training/{run_id}/": {
            "get": {
                "summary": "A training run's live state (staff)",
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": [
                                "status",
                                "epoch",
                                "step",
                                "total_steps",
                                "images_per_s",
                                "losses",
                                "epochs",
                                "initial_map",
                                "best_map",
                                "error",
                                "cancel_requested",
                                "mining",
                            ],
                            "properties": {
                                "status": {"type": "string"},
                                "epoch": {"type": "integer"},
                                "step": {"type": "integer"},
                                "total_steps": {"type": "integer"},
                                "images_per_s": _NUMBER_OR_NULL,
                                "losses": {"type": "array"},
                                "epochs": {"type": "array"},
                                "initial_map": _NUMBER_OR_NULL,
                                "best_map": _NUMBER_OR_NULL,
                                "error": {"type": "string"},
                                "cancel_requested": {"type": "boolean"},
                                "mining": {
                                    "description": "self-supervised recipe: its mining stage (else null)",
                                    "oneOf": [
                                        {"type": "null"},
                                        {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "required": [
                                                "status",
                                                "stage",
                                                "done",
                                                "total",
                                                "statistics",
                                                "error",
                                            ],
                                            "properties": {
                                                "status": {"type": "string"},
                                                "stage": {"type": "string"},
                                                "done": {"type": "integer"},
                                                "total": {"type": "integer"},
                                                "statistics": {"type": "object"},
                                                "error": {"type": "string"},
                                            },
                                        },
                                    ],
                                },
                            },
                        },
                        "state",
                    )
                },
            }
        },
        "/api/schema/": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI")},
            }
        },
    },
    "components": {
        "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string", "minLength": 1}},
            },
            "Landmark": _LANDMARK,
            "Position": _POSITION,
            "Location": {
                "type": ["object", "null"],
                "description": "Where the photo was taken, estimated from the positions (EXIF GPS or "
                "labels.csv) of its re-ranked matches; null when it cannot be (location_reason says why).",
                "required": [
                    "latitude",
                    "longitude",
                    "radius_m",
                    "confidence",
                    "supporting_image_ids",
                    "method",
                ],
                "additionalProperties": False,
                "properties": {
                    "latitude": {"type": "number", "minimum": -90, "maximum": 90},
                    "longitude": {"type": "number", "minimum": -180, "maximum": 180},
                    "radius_m": {
                        "type": "number",
                        "minimum": 0,
                        "description": "How far the supporting matches spread around it, in metres.",
                    },
                    "confidence": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "Calibrated probability that it is within 25 m of the truth.",
                    },
                    "supporting_image_ids": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 1,
                        "description": "The matches the position rests on, strongest first.",
                    },
                    "method": {
                        "type": "string",
                        "enum": ["verified_group", "agreeing_matches", "first_result", "best_match"],
                        "description": "verified_group: verified matches at one place; agreeing_matches: "
                        "several near-best matches at one place, none verified; first_result / best_match: "
                        "one match's position, nothing agreeing with it.",
                    },
                },
            },
            "Prediction": {
                "type": "object",
                "required": ["landmark", "confidence", "recognised", "evidence"],
                "additionalProperties": False,
                "properties": {
                    "landmark": {**_LANDMARK, "description": "null: not in the collection"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "recognised": {"type": "boolean"},
                    "evidence": {
                        "type": "object",
                        "required": ["best_guess", "weighted_by", "voters", "inliers", "votes", "threshold"],
                        "additionalProperties": False,
                        "properties": {
                            "best_guess": _LANDMARK,
                            "weighted_by": {"type": "string", "enum": ["inliers", "score"]},
                            "voters": {"type": "array", "items": {"type": "integer"}},
                            "inliers": {"type": ["integer", "null"]},
                            "votes": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["landmark", "weight"],
                                    "properties": {"landmark": _LANDMARK, "weight": {"type": "number"}},
                                },
                            },
                            "threshold": {"type": "number"},
                        },
                    },
                },
            },
            "Hit": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "rank",
                    "image_id",
                    "score",
                    "global_score",
                    "local_score",
                    "global_rank",
                    "inliers",
                    "landmark",
                    "image_url",
                    "thumbnail_url",
                    "page_url",
                    "position",
                ],
                "properties": {
                    "rank": {"type": "integer", "minimum": 1},
                    "image_id": {"type": "integer"},
                    "score": {"type": "number"},
                    "global_score": {"type": "number"},
                    "local_score": _NUMBER_OR_NULL,
                    "global_rank": {"type": "integer", "minimum": 1},
                    "inliers": {"type": ["integer", "null"]},
                    "landmark": _LANDMARK,
                    "image_url": {"type": "string"},
                    "thumbnail_url": {"type": "string"},
                    "page_url": {"type": "string"},
                    "position": _POSITION,
                },
            },
            "SearchResponse": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "model_version",
                    "query",
                    "filters",
                    "prediction",
                    "location",
                    "location_reason",
                    "rerank",
                    "timings_ms",
                    "results",
                ],
                "properties": {
                    "model_version": {"type": "string"},
                    "query": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["width", "height", "id", "image_id", "position"],
                        "properties": {
                            "width": {"type": "integer"},
                            "height": {"type": "integer"},
                            "id": {"type": ["string", "null"]},
                            "image_id": {"type": ["integer", "null"]},
                            "position": _POSITION,
                        },
                    },
                    "filters": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            name: {k: v for k, v in schema.items() if k != "description"}
                            for name, schema in _PARAMETERS.items()
                            if name not in ("k", "rerank")
                        },
                    },
                    "prediction": {"$ref": "#/components/schemas/Prediction"},
                    "location": {"$ref": "#/components/schemas/Location"},
                    "location_reason": {
                        "type": ["string", "null"],
                        "description": "Why location is null (the collection has no positions, none of the "
                        "best matches has one); null when there is a location.",
                    },
                    "rerank": {
                        "type": "object",
                        "required": ["method", "weight_global", "min_inliers"],
                        "properties": {
                            "method": {"type": "string", "enum": ["sift", "vlad", "patches", "none"]},
                            "weight_global": {"type": "number"},
                            "min_inliers": {
                                "type": "integer",
                                "description": "Inliers from which a result counts as a verified match.",
                            },
                        },
                    },
                    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
                },
            },
            "BatchResponse": {
                "type": "object",
                "required": ["count", "searches"],
                "properties": {
                    "count": {"type": "integer"},
                    "searches": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["index", "name", "status", "result", "error"],
                            "properties": {
                                "index": {"type": "integer", "minimum": 0},
                                "name": {"type": "string"},
                                "status": {"type": "integer", "enum": [200, 400, 409, 413]},
                                "result": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/SearchResponse"},
                                        {"type": "null"},
                                    ]
                                },
                                "error": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            },
            "Upload": {
                "type": "object",
                "required": ["images", "errors"],
                "additionalProperties": False,
                "properties": {
                    "images": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "status", "page_url"],
                            "properties": {
                                "id": {"type": "integer"},
                                "status": {"type": "string"},
                                "page_url": {"type": "string"},
                            },
                        },
                    },
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "error"],
                            "properties": {"name": {"type": "string"}, "error": {"type": "string"}},
                        },
                    },
                },
            },
            "Progress": {
                "type": "object",
                "required": ["total", "indexed", "pending", "failed", "local_features", "percent"],
                "properties": {
                    name: {"type": "number" if name == "percent" else "integer", "minimum": 0}
                    for name in ("total", "indexed", "pending", "failed", "local_features", "percent")
                },
            },
        },
    },
}
