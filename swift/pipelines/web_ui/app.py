"""The web UI's page: a title and one tab per page of pages/, in ms-swift's order and names."""
import gradio as gr

from .jobs import JobManager
from .page import build_page
from .pages import PAGES

TITLE = {'en': 'SWIFT: train, align, serve, export and evaluate language models',
         'zh': 'SWIFT：大模型训练、对齐、推理、导出与评测'}
SUBTITLE = {'en': 'Each page runs the swift command it shows; the same command works in a terminal.',
            'zh': '每个页面运行其显示的 swift 命令；同样的命令也可以在终端运行。'}


def build_app(manager: JobManager, lang: str) -> gr.Blocks:
    with gr.Blocks(title='SWIFT Web-UI') as demo:
        gr.Markdown(f'# {TITLE[lang]}\n{SUBTITLE[lang]}')
        with gr.Tabs():
            for page in PAGES:
                build_page(gr, page, manager, lang)
    return demo
