"""An Ollama ``Modelfile`` for a model folder: its chat format as a Go template, stop words and default system."""
import json
import os

from ..template import Template
from ..utils import SwiftError


def ollama_template(template: Template) -> str:
    """The template's turns in Ollama's Go-template syntax over ``.System`` and ``.Messages``, ending with the
    assistant prefix so the model answers next."""
    meta = template.meta
    if template.template_type == 'hf':  # the tokenizer's Jinja template has no turn formats to translate
        raise SwiftError('--to_ollama needs a registered chat template: pass --template (e.g. qwen, llama3)')
    # llama.cpp adds the BOS token itself; writing it here too would double it.
    prefix = '' if meta.prefix == template.tokenizer.bos_token else meta.prefix
    turns = [f'{{{{ if eq .Role "user" }}}}{_go(meta.user_format, ".Content")}',
             f'{{{{ else if eq .Role "assistant" }}}}{meta.assistant_prefix}{{{{ .Content }}}}'
             f'{template.response_end}{meta.turn_sep}']
    if meta.tool_format:
        turns.append(f'{{{{ else if eq .Role "tool" }}}}{_go(meta.tool_format, ".Content")}')
    return (f'{prefix}{{{{ if .System }}}}{_go(meta.system_format, ".System")}{{{{ end }}}}'
            f'{{{{ range .Messages }}}}{"".join(turns)}{{{{ end }}}}{{{{ end }}}}{meta.assistant_prefix}')


def _go(fmt: str, field: str) -> str:
    return fmt.replace('{{SYSTEM}}', f'{{{{ {field} }}}}').replace('{{QUERY}}', f'{{{{ {field} }}}}')


def write_modelfile(model_dir: str, template: Template, out_dir: str) -> str:
    """``out_dir/Modelfile``: ``ollama create NAME -f out_dir/Modelfile`` imports the model."""
    lines = [f'FROM {os.path.abspath(model_dir)}', f'TEMPLATE """{ollama_template(template)}"""']
    lines += [f'PARAMETER stop {json.dumps(word, ensure_ascii=False)}' for word in template.stop_words]
    if template.default_system:
        lines.append(f'SYSTEM """{template.default_system}"""')
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'Modelfile')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path
