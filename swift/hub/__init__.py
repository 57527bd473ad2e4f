from .hub import download_dataset, safe_snapshot_download
