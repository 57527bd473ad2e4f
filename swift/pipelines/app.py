"""``swift app``: chat with a model in the browser, a gradio page over the same engine as ``swift infer``.

    swift app --adapters output/vx-xxx/checkpoint-xxx --temperature 0 --max_new_tokens 2048 \\
        --studio_title my-model --lang en --server_port 7860

The answer streams into the chat token by token (``--stream false`` shows it whole); the conversation so far is
sent with every question, and the page keeps it until its clear button. A model that sees images (and videos) gets
a message box that takes them too: each file goes to the engine as an ``image_url`` (``video_url``) part of its
turn. gradio is imported only here, so the other commands neither need it nor wait for it.
"""
import mimetypes
import os
from contextlib import closing
from typing import Iterator

from ..arguments import AppArguments
from ..infer import InferEngine
from ..protocol import InferRequest, RequestConfig
from ..utils import SwiftError, get_logger
from ..utils.packages import require_extra
from .common import apply_checkpoint_args, to_arguments
from .infer import build_engine, request_config

logger = get_logger()
TEXTS = {
    'en': {'system': 'System prompt (empty: the model default)', 'chat': 'Chat', 'query': 'Your message',
           'placeholder': 'Type a message and press Enter', 'send': 'Send', 'clear': 'Clear history',
           'media_placeholder': 'Type a message, attach images or videos, and press Enter'},
    'zh': {'system': '系统提示（留空：模型默认）', 'chat': '对话', 'query': '你的消息',
           'placeholder': '输入消息后按回车发送', 'send': '发送', 'clear': '清空历史',
           'media_placeholder': '输入消息、附上图片或视频后按回车发送'},
}
# The media a template takes -> gradio's file types for the upload, and the OpenAI part each file becomes.
UPLOADS = {'images': ('image', 'image_url'), 'videos': ('video', 'video_url')}


def app_main(args: AppArguments | list[str] | None = None) -> None:
    args = apply_checkpoint_args(to_arguments(AppArguments, args))
    gr = _import_gradio()  # before the model loads: a missing package should cost no waiting
    with build_engine(args) as engine:
        title = args.studio_title or os.path.basename(os.path.normpath(args.model))
        demo = build_demo(gr, engine, request_config(args), title, TEXTS[args.lang])
        logger.info(f'chat with {title} on http://{args.server_name}:{args.server_port}')
        try:
            demo.queue().launch(server_name=args.server_name, server_port=args.server_port, share=args.share)
        except OSError as err:  # the port is taken, or the address is not this machine's
            reason = str(err).split('. ')[0]  # gradio goes on about launch() arguments, which mean nothing here
            raise SwiftError(f'cannot serve on {args.server_name}:{args.server_port} ({reason}); '
                             'pick another --server_port or --server_name') from None


def _import_gradio():
    require_extra('gradio', 'app', 'swift app')
    import gradio
    return gradio


def build_demo(gr, engine: InferEngine, config: RequestConfig, title: str, texts: dict[str, str]):
    """The page: a system prompt box, the chat, a message box with its send button, and a clear button. The
    message box takes files where the model sees media (its template's ``media``)."""
    uploads = [UPLOADS[key][0] for key in getattr(engine.template, 'media', ()) if key in UPLOADS]
    with gr.Blocks(title=title) as demo:
        gr.Markdown(f'## {title}')
        system = gr.Textbox(engine.template.default_system or '', label=texts['system'], lines=2)
        chatbot = gr.Chatbot(label=texts['chat'], height=480)
        with gr.Row():
            if uploads:
                query = gr.MultimodalTextbox(label=texts['query'], placeholder=texts['media_placeholder'],
                                             file_types=uploads, file_count='multiple', scale=5)
            else:
                query = gr.Textbox(label=texts['query'], placeholder=texts['placeholder'], scale=5)
            send = gr.Button(texts['send'], variant='primary', scale=1)
        clear = gr.Button(texts['clear'])

        def answer(text: str | dict, history: list[dict], system_prompt: str):
            yield from chat_turn(engine, config, text, history, system_prompt, gr.Error)

        gr.on([query.submit, send.click], answer, [query, chatbot, system], [query, chatbot], api_name='chat')
        clear.click(lambda: ('', []), None, [query, chatbot], api_name='clear')
    return demo


def chat_turn(engine: InferEngine, config: RequestConfig, query: str | dict, history: list[dict], system: str,
              error: type[Exception]) -> Iterator[tuple[str, list[dict]]]:
    """Yield ``(message box, chat)`` as the answer grows: the question at once, then the answer as it streams.
    ``query`` is the message box's text, or the media box's ``{'text': ..., 'files': [path, ...]}``. A failure (a
    conversation longer than the context, an unreadable image) raises ``error``, which gradio shows on the page."""
    text, files = (query, []) if isinstance(query, str) else (query.get('text') or '', query.get('files') or [])
    if not text.strip() and not files:
        yield query, history
        return
    turn = [{'type': 'file', 'file': {'path': path, 'mime_type': _mime_type(path)}} for path in files]
    turn = turn + [{'type': 'text', 'text': text}] if files else text
    messages = [{'role': 'system', 'content': system}] if system.strip() else []
    messages += [{'role': m['role'], 'content': _engine_content(m['content'])} for m in history]
    messages.append({'role': 'user', 'content': _engine_content(turn)})
    history = [*history, {'role': 'user', 'content': turn}, {'role': 'assistant', 'content': ''}]
    yield '', history
    try:
        if not config.stream:
            history[-1]['content'] = engine.infer([InferRequest(messages)], config)[0].choices[0].message.content
            yield '', history
            return
        # A closed tab makes gradio close this generator; closing the stream too ends the generation at once.
        with closing(engine.infer([InferRequest(messages)], config)) as stream:
            for chunk, in stream:
                history[-1]['content'] += chunk.choices[0].delta.content or ''
                yield '', history
    except SwiftError as err:  # said on the page; the app goes on
        raise error(str(err)) from None


def _engine_content(content) -> str | list[dict]:
    """A chat message as the engine takes it: gradio hands messages back with their content as a list of typed
    parts; its text alone where it has no files, else OpenAI parts with each file as an image_url (video_url)."""
    if isinstance(content, str):
        return content
    if not any(part.get('type') == 'file' for part in content):
        return ''.join(part.get('text', '') for part in content if part.get('type') == 'text')
    parts = []
    for part in content:
        if part.get('type') == 'file':
            kind = UPLOADS['videos' if _is_video(part['file']) else 'images'][1]
            parts.append({'type': kind, kind: {'url': part['file']['path']}})
        elif part.get('type') == 'text' and part.get('text'):
            parts.append({'type': 'text', 'text': part['text']})
    return parts


def _mime_type(path: str) -> str | None:
    return mimetypes.guess_type(path)[0]


def _is_video(file: dict) -> bool:
    return (file.get('mime_type') or _mime_type(file['path']) or '').startswith('video/')
