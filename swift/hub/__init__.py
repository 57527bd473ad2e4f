from .hub import download_dataset, fetch_url, push_folder, safe_snapshot_download
