"""PCA-whitening learnt on the collection itself, without labels, as a new model version.

The active (unwhitened) model's stored vectors of the collection are read back from Milvus, a
`LearnedWhitening` to ``dim`` dimensions is fitted on them, and the network with the whitening after GeM
is saved as a checkpoint, published where every process loads model versions from (FEATURES_ROOT/models
or the bucket, `register_checkpoint`) and registered as a version; activating it re-indexes blue/green as
for any version. Query-split images are left out of the fit, so reported queries never shape the model.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from retrieval_core.models.whitening import fit_whitening, save_whitened_model
from webapp.catalog.models import Image
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import (
    activate_version,
    collection_store,
    get_active_version,
    get_extractor,
    register_checkpoint,
)
from webapp.storage import is_stored_object, staging_folder

__all__ = ["learn_whitening"]

_CHUNK = 1000


def learn_whitening(dim: int, *, activate: bool = False) -> EmbeddingModelVersion:
    """Register (and with ``activate`` roll out) the active model + a PCA-whitening to ``dim``."""
    if dim < 1:
        raise ValueError(f"the whitening dimension must be positive, got {dim}")
    base = get_active_version()
    net = get_extractor(base.config).net
    if net.whitening is not None:
        raise ValueError(f"{base.name} is whitened already: activate its unwhitened base model first")
    ids = list(
        Image.objects.filter(status=Image.Status.INDEXED)
        .exclude(split=Image.Split.QUERY)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    store = collection_store(base.collection_name, base.dim, create=False)
    vectors: list[np.ndarray] = []
    for start in range(0, len(ids), _CHUNK):
        vectors.extend(store.get_vectors(ids[start : start + _CHUNK]).values())
    if len(vectors) <= dim:
        raise ValueError(
            f"a {dim}-d whitening needs more than {dim} indexed images, the collection has {len(vectors)}: "
            "import more photos or choose a smaller dimension"
        )
    whitening = fit_whitening(np.stack(vectors), dim)
    config = base.config
    # A published base's object is named by its version key; a local one's key is read from its file.
    base_key = PurePosixPath(base.weights).stem if is_stored_object(base.weights) else config.version_key
    # FEATURES_ROOT/models/<name> as before, or staged and published to the bucket (`register_checkpoint`).
    with staging_folder("models") as folder:
        path = folder / f"{base_key}-pw{dim}-n{len(vectors)}.pt"
        save_whitened_model(
            path,
            net.state_dict(),
            whitening,
            {"backbone": config.backbone, "image_size": config.image_size, "gem_p": config.gem_p},
        )
        version = register_checkpoint(
            path, name=f"{base.name} + PCA-whitening {dim} ({len(vectors)} images)", scales=config.scales
        )
    if activate:
        activate_version(version)
    return version
