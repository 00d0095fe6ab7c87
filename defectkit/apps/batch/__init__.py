"""``inspect batch``: re-inspect an archive of images on Dask into the results store.

After a model change, last month's images are inspected again with the new bundle,
on a LocalCluster here or an existing Dask cluster, into the same store the line's
daemon writes (rows unique by content hash and bundle id), resumable after any kill
and exactly once; ``inspect compare`` then lists the parts whose verdict or class
changed. Torch-free like the daemon: workers run :mod:`defectkit.exporters.runtime`.

Modules, one job each: :mod:`.sources` (SOURCE arguments -> locations; reading one),
:mod:`.work` (the Dask task on a worker), :mod:`.cluster` (LocalCluster or an existing
scheduler), :mod:`.job` (the driver: skip what is done, submit, commit),
:mod:`.progress` (bar, files/s, ETA), :mod:`.compare` and :mod:`.page` (two bundles'
verdicts, as a table and an HTML page). From the daemon it uses only the store
(:mod:`defectkit.apps.daemon.store`), as the import contracts check.
"""
