"""``swift app`` with a model that sees images: the message box takes an uploaded picture, which reaches the engine
as the turn's image; a text model's page offers no upload. The pages are the real gradio app, served from this
process, in headless chromium."""
import os

import pytest
import torch

from swift.infer import PtEngine
from swift.pipelines.app import TEXTS, build_demo, chat_turn
from swift.protocol import InferRequest, RequestConfig

from ..browser import browser_page, screenshot  # noqa: F401  (fixture)
from ..deploy.support import free_port
from ..multimodal.helpers import square

GREEDY = RequestConfig(max_tokens=8, temperature=0)
QUESTION = 'What is this?'


def _vision_adapter(base_dir: str, out_dir: str) -> str:
    """A random LoRA on the language model: the bare tiny model answers newlines whatever it sees."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(base_dir), LoraConfig(
        r=4, target_modules=r'.*language_model.*\.(q_proj|v_proj|o_proj|up_proj|down_proj)'))
    for name, param in model.named_parameters():
        if 'lora_B' in name:  # peft starts B at zero, which would leave the answers unchanged
            torch.nn.init.normal_(param, std=0.5)
    model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope='module')
def vl_engine(qwen2_5_vl_dir, tmp_path_factory) -> PtEngine:
    engine = PtEngine(qwen2_5_vl_dir)
    engine.add_adapter(_vision_adapter(qwen2_5_vl_dir, str(tmp_path_factory.mktemp('app_image') / 'lora')))
    return engine


def _answer(engine: PtEngine, images: list) -> str:
    content = ('<image>' * len(images)) + QUESTION
    request = InferRequest([{'role': 'user', 'content': content}], images=images)
    return engine.infer([request], GREEDY)[0].choices[0].message.content


def _serve(gradio, engine: PtEngine, title: str):
    """The app's page for ``engine``, on a free port of this machine; returns (demo, url)."""
    demo = build_demo(gradio, engine, GREEDY, title, TEXTS['en'])
    port = free_port()
    demo.queue().launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f'http://127.0.0.1:{port}/'


@pytest.fixture(scope='module')
def gradio():
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    import gradio
    return gradio


def test_an_uploaded_image_gets_the_answer_about_it(vl_engine, gradio, browser_page, tmp_path):
    picture = str(tmp_path / 'blue.png')
    square('blue').save(picture)
    expected = _answer(vl_engine, [picture])
    # the image must matter to the answer, or the test could pass with the upload lost
    assert expected != _answer(vl_engine, []) and expected != _answer(vl_engine, [square('red')])
    demo, url = _serve(gradio, vl_engine, 'Tiny vision chat')
    try:
        page = browser_page
        page.goto(url)
        page.locator('input[type=file]').set_input_files(picture)
        box = page.get_by_placeholder(TEXTS['en']['media_placeholder'])
        box.fill(QUESTION)
        box.press('Enter')
        user = page.get_by_test_id('user')
        user.locator('img').first.wait_for()  # the picture stands in the question
        bot = page.get_by_test_id('bot').last
        page.wait_for_function('([el, text]) => el.innerText.split(/\\s+/).join(" ").trim() === text',
                               arg=[bot.element_handle(), ' '.join(expected.split())])
        assert QUESTION in user.last.inner_text()
        screenshot(page, tmp_path, 'app_image')
    finally:
        demo.close()


def test_a_text_model_page_has_no_upload(qwen2_dir, gradio, browser_page):
    demo, url = _serve(gradio, PtEngine(qwen2_dir), 'Tiny chat')
    try:
        browser_page.goto(url)
        browser_page.get_by_label('Your message').wait_for()
        assert browser_page.locator('input[type=file]').count() == 0
    finally:
        demo.close()


def test_files_of_the_history_go_to_the_engine_as_media_parts(vl_engine, tmp_path):
    """Each turn keeps its pictures: the second question is answered with the first turn's image in view."""
    picture = str(tmp_path / 'green.png')
    square('green').save(picture)
    *_, (box, history) = chat_turn(vl_engine, GREEDY, {'text': QUESTION, 'files': [picture]}, [], '', RuntimeError)
    assert box == '' and history[0]['content'][0]['file']['path'] == picture
    assert history[1]['content'] == _answer(vl_engine, [picture])
    *_, (_, history) = chat_turn(vl_engine, GREEDY, {'text': 'And now?', 'files': []}, history, '', RuntimeError)
    messages = [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': picture}},
                                             {'type': 'text', 'text': QUESTION}]},
                {'role': 'assistant', 'content': history[1]['content']}, {'role': 'user', 'content': 'And now?'}]
    assert history[3]['content'] == vl_engine.infer([InferRequest(messages)], GREEDY)[0].choices[0].message.content
