"""The document/job lifecycle: records and their state machine, the Redis state store,
upload acceptance, the indexing runner, the store-write protocol and the reaper.

No web framework and no Celery here: ``services/`` adapts these to FastAPI and Celery.
"""
