from .hub import download_dataset, push_folder, safe_snapshot_download
