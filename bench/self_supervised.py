"""Self-supervised fine-tuning (``train --recipe self``) under the held-out protocol: before/after mAP@100.

    .venv/bin/python bench/self_supervised.py ../shared/datasets/sfm_landmarks ../shared/datasets/wonders7 \\
        ../shared/datasets/holidays_partial --out /tmp/self_bench

Several ROOTs are merged into one collection (relpaths and landmarks prefixed by the folder name), which is
how a ~1k-photo library is measured on the shared sets. Protocol (held out by component, since the sets are
labelled): per set, a seeded ``--eval-fraction`` of its landmarks with at least two images are evaluation
landmarks; up to ``--queries-per-landmark`` of their images are the reported queries, searched against
every other image of the merged collection (the eval landmarks' other images are the positives, everything
else distractors). `held_out_images` removes the queries, their positives and every image of their
landmarks from mining, which then sees the rest WITHOUT labels. Training is the PxK contrastive loop from
ImageNet on the mined pseudo-landmarks, the checkpoint chosen by validation mAP@100 on mined validation
pairs; the reported queries decide nothing. Prints mining statistics, agreement of the mined components
with the true landmarks of the mined images, timings, and global mAP@100 before / after per set.

``--unlabelled`` takes one ROOT with its own evaluation protocol (``ground_truth.json``) and treats it as
an unlabelled library, as ``train --recipe self ROOT`` does: every photo but its ``split=query`` ones is
mined, without labels; the printed checkpoints are then scored by ``manage.py evaluate ROOT --checkpoint``
(the ImageNet row in the same run):

    .venv/bin/python bench/self_supervised.py ../shared/datasets/indoor_tower --unlabelled \\
        --out /tmp/ft/indoor_tower --min-inliers 30 --frozen-stages 3 --lr 3e-5 --epochs 2 \\
        --steps-per-epoch 20 --p 8 --k 4 --threads 1 --supervised
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.datasets.collection import CollectionItem, read_collection
from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.eval.metrics import mean_average_precision_at_k
from retrieval_core.eval.splits import split_within_landmarks
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.training import TrainConfig, TrainEvent, ValidationSet, checkpoint_embedding_config, train
from retrieval_core.training.collection_mining import DEFAULT_SIFT, prepare_collection_features
from retrieval_core.training.pair_mining import MiningConfig, MiningState, mine, summarise
from retrieval_core.training.self_supervised import cluster_agreement, held_out_images, mined_split


def _hash(seed: int, kind: str, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{kind}\x00{key}".encode()).hexdigest()


def merged_items(roots: list[Path]) -> list[CollectionItem]:
    items = []
    for root in roots:
        for item in read_collection(root):
            items.append(
                CollectionItem(item.path, f"{root.name}/{item.relpath}", f"{root.name}/{item.landmark}", None)
            )
    return items


def evaluation_queries(
    items: list[CollectionItem], seed: int, fraction: float, per_landmark: int
) -> list[CollectionItem]:
    by_set: defaultdict[str, defaultdict[str, list[CollectionItem]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_set[item.relpath.split("/", 1)[0]][item.landmark].append(item)
    queries = []
    for landmarks in by_set.values():
        eligible = sorted((n for n, m in landmarks.items() if len(m) >= 2), key=lambda n: _hash(seed, "l", n))
        for name in eligible[: max(1, round(fraction * len(eligible)))]:
            members = sorted(landmarks[name], key=lambda i: _hash(seed, "i", i.relpath))
            queries += members[: min(per_landmark, len(members) - 1)]
    return queries


def _map_at_100(
    queries: list[EvalQuery], ids: tuple[str, ...], vectors: np.ndarray, query_names: set[str]
) -> float:
    """mAP@100 of cosine ranking of each query against every image that is not a reported query."""
    row = {image_id: i for i, image_id in enumerate(ids)}
    index = [i for i, image_id in enumerate(ids) if image_id not in query_names]
    matrix = vectors[index]
    results = {}
    for query in queries:
        scores = matrix @ vectors[row[query.relpath]]
        top = np.argsort(-scores, kind="stable")[:100]
        results[query.relpath] = [ids[index[j]] for j in top]
    ground_truth = {q.relpath: q.positives for q in queries}
    return float(mean_average_precision_at_k(results, ground_truth, k=100).mean_ap or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("roots", type=Path, nargs="+", help="collection folders (merged)")
    parser.add_argument("--out", type=Path, required=True, help="work folder (features, mining state, runs)")
    parser.add_argument("--eval-fraction", type=float, default=0.3)
    parser.add_argument("--queries-per-landmark", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=20)
    parser.add_argument("--min-inliers", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    parser.add_argument("--p", type=int, default=4)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--supervised",
        action="store_true",
        help="also train the supervised e3 recipe with the same schedule on the same photos mining saw, "
        "with their true labels, and report it beside the self-supervised model",
    )
    parser.add_argument("--frozen-stages", type=int, default=0, help="backbone stages kept at ImageNet's")
    parser.add_argument(
        "--unlabelled",
        action="store_true",
        help="one ROOT, mined without labels except its split=query photos; score with `evaluate`",
    )
    args = parser.parse_args()
    if args.unlabelled and len(args.roots) != 1:
        parser.error("--unlabelled takes exactly one ROOT")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    threadpool_limits(1)  # BLAS in matching: one thread is fastest on 2 shared cores
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", file=sys.stderr, flush=True)

    if args.unlabelled:  # the folder's own protocol scores; its query photos are never mined
        items = [item for item in read_collection(args.roots[0]) if item.split != "query"]
        queries = []
    else:
        items = merged_items(args.roots)
        queries = evaluation_queries(items, args.seed, args.eval_fraction, args.queries_per_landmark)
    paths = {item.relpath: item.path for item in items}
    truth = {item.relpath: item.landmark for item in items if item.landmark}
    query_names = {q.relpath for q in queries}
    index = [item for item in items if item.relpath not in query_names]
    reported = [
        EvalQuery(q.relpath, frozenset(i.relpath for i in index if i.landmark == q.landmark)) for q in queries
    ]
    held = held_out_images(reported, labels=truth)
    log(f"{len(items)} images; {len(queries)} reported queries; {len(held)} images held out of mining")

    embedding = EmbeddingConfig(image_size=args.image_size)
    extractor = GlobalDescriptorExtractor.from_config(embedding, device="cpu")
    t0 = time.perf_counter()
    features = prepare_collection_features(
        args.out / "cache", paths, extractor, DEFAULT_SIFT, progress=lambda s, d, t: None
    )
    t_features = time.perf_counter() - t0
    log(f"features (global {args.image_size} px + RootSIFT 1000 @ 640 px): {t_features:.0f} s")

    config = MiningConfig(neighbours=args.neighbours)  # verification; --min-inliers only summarises
    t0 = time.perf_counter()
    mined_ids = [i for i in features.ids if i not in held]
    state_dir = args.out / f"mining-{args.seed}-{args.neighbours}"
    result = mine(
        state_dir,
        mined_ids,
        features.index,
        features.sift,
        config,
        progress=lambda s, d, t: log(f"{s} {d}/{t}") if d == t or d % 5 == 0 else None,
    )
    assert result is not None
    if args.min_inliers != config.min_inliers:
        result = summarise(MiningState.open(state_dir).with_threshold(args.min_inliers))
    t_mining = time.perf_counter() - t0
    agreement = cluster_agreement({i: truth[i] for i in mined_ids if i in truth}, result)
    stats = {k: v for k, v in result.statistics.items() if k != "component_sizes"}
    log(f"mining: {t_mining:.0f} s; {json.dumps(stats)}")
    log(f"component sizes: {result.statistics['component_sizes'][:30]}")
    if truth:
        log(
            f"agreement with the true landmarks: ARI {agreement.adjusted_rand:.3f}, "
            f"purity {agreement.purity:.3f}, coverage {agreement.coverage:.3f}"
        )

    mined_paths: dict[str | int, Path] = {key: path for key, path in paths.items()}
    split = mined_split(result, mined_paths, seed=args.seed)
    validation = ValidationSet(split.val_queries, split.val_index)
    train_config = TrainConfig(
        recipe="e3",
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        p=min(args.p, split.landmarks),
        k=args.k,
        lr=args.lr,
        image_size=args.image_size,
        seed=args.seed,
        frozen_stages=args.frozen_stages,
        workers=args.threads,
        device="cpu",
    )
    log(
        f"training on {len(split.train)} images in {split.landmarks} pseudo-landmarks; validation "
        f"{len(split.val_queries)} queries / {len(split.val_index)} index"
    )
    t0 = time.perf_counter()

    def report(event: TrainEvent) -> None:
        if event.kind == "epoch":
            score = 100 * (event.validation_map or 0)
            log(f"epoch {event.epoch}: loss {event.loss:.4f} val mAP@100 {score:.2f}")

    schedule = f"{args.epochs}x{args.steps_per_epoch}-{args.image_size}-lr{args.lr:g}-f{args.frozen_stages}"
    run_dir = args.out / f"run-{args.seed}-{schedule}"
    trained = train(train_config, split.train, validation, run_dir, progress=report)
    t_training = time.perf_counter() - t0
    assert trained.best_checkpoint is not None
    log(f"training: {t_training:.0f} s, {trained.steps} steps, best epoch {trained.best_epoch}")

    def embed(checkpoint: Path) -> np.ndarray:
        """(N, D) vectors of every photo, in ``features.ids`` order, with a trained checkpoint."""
        model = GlobalDescriptorExtractor.from_config(checkpoint_embedding_config(checkpoint), "cpu")
        t0 = time.perf_counter()
        extracted = model.extract_paths([paths[i] for i in features.ids], workers=args.threads)
        log(f"embedded the collection with {checkpoint}: {time.perf_counter() - t0:.0f} s")
        if len(extracted.indices) != len(features.ids):
            raise SystemExit(f"{len(features.ids) - len(extracted.indices)} images failed to decode")
        return extracted.vectors

    checkpoints = {"self": trained.best_checkpoint}
    if args.supervised:
        # The photos mining saw, with their true labels: what e3 would learn from the same pool.
        seen = set(mined_ids)
        pool = [item for item in items if item.relpath in seen and item.relpath in truth]
        train_items, val_queries, val_index = split_within_landmarks(pool, seed=args.seed, val_queries=1)
        log(f"supervised e3: {len(train_items)} labelled photos, {len(val_queries)} validation queries")
        t0 = time.perf_counter()
        supervised = train(
            train_config,
            train_items,
            ValidationSet(val_queries, val_index),
            args.out / f"run-e3-{args.seed}-{schedule}",
            progress=report,
        )
        assert supervised.best_checkpoint is not None
        log(f"supervised training: {time.perf_counter() - t0:.0f} s, best epoch {supervised.best_epoch}")
        checkpoints["e3 (labels)"] = supervised.best_checkpoint
    if args.unlabelled:
        flags = " ".join(f"--checkpoint {path}" for path in checkpoints.values())
        print(f"\ncheckpoints: {json.dumps({name: str(path) for name, path in checkpoints.items()})}")
        print(f"score them: manage.py evaluate {args.roots[0]} --image-size {args.image_size} {flags}")
    else:
        vectors = {"ImageNet": features.index.vectors}
        vectors.update({name: embed(path) for name, path in checkpoints.items()})
        sets = sorted({q.relpath.split("/", 1)[0] for q in queries})
        print(f"\nmAP@100 (%) on reported queries never used for mining ({args.image_size} px, global only)")
        print(f"{'set':20s} {'queries':>8s}" + "".join(f"{name:>13s}" for name in vectors))
        for name in [*sets, "all"]:
            chosen = [q for q in reported if name == "all" or q.relpath.startswith(f"{name}/")]
            scores = [100 * _map_at_100(chosen, features.ids, v, query_names) for v in vectors.values()]
            print(f"{name:20s} {len(chosen):8d}" + "".join(f"{score:13.2f}" for score in scores))
    before_val, after_val = 100 * (trained.initial_map or 0), 100 * (trained.best_map or 0)
    print(f"\nvalidation (mined) mAP@100: {before_val:.2f} -> {after_val:.2f}")
    print(
        f"timings: features {t_features:.0f} s, mining {t_mining:.0f} s, training {t_training:.0f} s "
        f"({args.threads} threads, CPU)"
    )
    print(f"mining: {json.dumps(dataclasses.asdict(agreement))}")


if __name__ == "__main__":
    main()
