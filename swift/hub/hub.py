"""Downloads from ModelScope (the default when installed) or the Hugging Face hub.

The only code in swift that touches the network. Offline, every failure becomes one line naming the id and hub.
"""
import importlib.util
import os
import urllib.error
import urllib.request

from ..utils import SwiftError, env, get_logger

logger = get_logger()


def _modelscope_available() -> bool:
    return importlib.util.find_spec('modelscope') is not None


def _pick_hub(use_hf: bool | None) -> str:
    if use_hf or not _modelscope_available():
        return 'huggingface'
    return 'modelscope'


def safe_snapshot_download(model_id_or_path: str, use_hf: bool | None = None, revision: str | None = None,
                           repo_type: str = 'model', token: str | None = None) -> str:
    """Return a local folder for ``model_id_or_path``: the folder itself, or a hub snapshot."""
    local = os.path.expanduser(model_id_or_path)
    if os.path.isdir(local):
        return os.path.abspath(local)
    if model_id_or_path.count('/') != 1 or model_id_or_path.startswith(('.', '/', '~')):
        raise SwiftError(f"model '{model_id_or_path}' is not a local folder and not a hub id of the form 'owner/name'")
    hub = _pick_hub(use_hf)
    if env.hub_offline():
        raise SwiftError(f"'{model_id_or_path}' is not a local folder, and HF_HUB_OFFLINE=1 forbids downloading it "
                         f'from {hub}')
    logger.info(f'downloading {repo_type} {model_id_or_path} from {hub}')
    try:
        if hub == 'modelscope':
            from modelscope import snapshot_download as ms_download
            return ms_download(model_id_or_path, revision=revision, repo_type=repo_type)
        from huggingface_hub import snapshot_download as hf_download
        return hf_download(model_id_or_path, revision=revision, repo_type=repo_type, token=token)
    except Exception as err:  # the hubs raise many network error types; all mean the same to the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SwiftError(f"cannot download {repo_type} '{model_id_or_path}' from {hub} "
                         f'(offline or not found): {reason[:200]}') from None


def download_dataset(dataset_id: str, use_hf: bool | None = None, revision: str | None = None) -> str:
    """Snapshot a hub dataset repository to a local folder."""
    return safe_snapshot_download(dataset_id, use_hf=use_hf, revision=revision, repo_type='dataset')


def push_folder(folder: str, hub_model_id: str, use_hf: bool | None = None, token: str | None = None,
                private: bool = False, commit_message: str = 'update files') -> str:
    """Upload ``folder`` as the model repository ``hub_model_id``; returns the hub used."""
    hub = _pick_hub(use_hf)
    if env.hub_offline():
        raise SwiftError(f"cannot push to {hub}: HF_HUB_OFFLINE=1")
    try:
        if hub == 'modelscope':
            from modelscope.hub.api import HubApi
            api = HubApi()
            if token:
                api.login(token)
            api.push_model(hub_model_id, folder, private=private, commit_message=commit_message)
        else:
            from huggingface_hub import HfApi
            api = HfApi(token=token)
            api.create_repo(hub_model_id, private=private, exist_ok=True)
            api.upload_folder(folder_path=folder, repo_id=hub_model_id, commit_message=commit_message)
    except Exception as err:  # network, auth and permission errors all end the same way for the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SwiftError(f"cannot push '{folder}' to {hub} as '{hub_model_id}': {reason[:200]}") from None
    return hub


def fetch_url(url: str) -> bytes:
    """The body at an http(s) URL: an image named by a dataset row or a request. Offline it is not attempted."""
    if env.hub_offline():
        raise SwiftError(f'cannot fetch {url}: HF_HUB_OFFLINE=1 forbids downloads')
    try:
        with urllib.request.urlopen(url, timeout=env.media_timeout()) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:  # refused, unreachable, timed out, 4xx/5xx
        reason = str(err.reason if isinstance(err, urllib.error.URLError) else err).strip().splitlines()
        raise SwiftError(f'cannot fetch {url}: {reason[0][:200] if reason else type(err).__name__}') from None
