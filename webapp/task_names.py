"""The names tasks are registered and sent under, in one place that imports no task module.

Services send work by name (`webapp.dispatch`), so they never import a task module and the dependency
graph points one way: task modules (`workers`) → services → dispatch. The names are the tasks' module
paths, which keeps messages already in a broker valid and lets CELERY_TASK_ROUTES route them by prefix
(gpu / cpu).
"""

from typing import Final

# gpu queue: model work
INDEX_IMAGES: Final = "workers.tasks.gpu.index_images"
REINDEX_VERSION: Final = "workers.tasks.gpu.reindex_version"
EVALUATE_COLLECTION: Final = "workers.tasks.gpu.evaluate_collection"
TRAIN_MODEL: Final = "workers.tasks.gpu.train_model"
# mining for the self recipe: candidates may run the model (gpu queue, routed by name in settings),
# verification chunks are RootSIFT + MAGSAC++ (cpu queue)
MINE_PREPARE: Final = "workers.tasks.mining.prepare_mining"
MINE_VERIFY: Final = "workers.tasks.mining.verify_chunk"

# cpu queue: the rest
PING: Final = "workers.tasks.cpu.ping"
EXTRACT_LOCAL_FEATURES: Final = "workers.tasks.cpu.extract_local_features"
PURGE_EXPIRED_QUERIES: Final = "workers.tasks.cpu.purge_expired_queries"  # run by Celery beat
ANALYSE_COLLECTION: Final = "workers.tasks.analysis.analyse_collection"
ANALYSE_PENDING: Final = "workers.tasks.analysis.analyse_pending"  # one coalesced run
ANALYSE_IMAGES: Final = "workers.tasks.analysis.analyse_images"
ANALYSE_LANDMARKS: Final = "workers.tasks.analysis.analyse_landmarks"
RECONCILE: Final = "workers.tasks.operations.reconcile"  # run by Celery beat
