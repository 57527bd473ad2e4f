"""Images drawn with PIL for the multimodal tests, and the colour toy task's rows."""
import json
import os

from PIL import Image, ImageDraw

COLOURS = {'red': (220, 30, 30), 'green': (30, 180, 60), 'blue': (40, 60, 220), 'yellow': (240, 220, 40)}


def square(colour: str, size: int = 56, background=(255, 255, 255)) -> Image.Image:
    """A filled square of ``colour`` on a white canvas of ``size`` pixels."""
    image = Image.new('RGB', (size, size), background)
    margin = size // 8
    ImageDraw.Draw(image).rectangle([margin, margin, size - margin, size - margin], fill=COLOURS[colour])
    return image


def save_squares(folder: str, size: int = 56) -> dict[str, str]:
    """One PNG per colour in ``folder``; colour -> file name."""
    os.makedirs(folder, exist_ok=True)
    names = {}
    for colour in COLOURS:
        names[colour] = f'{colour}.png'
        square(colour, size).save(os.path.join(folder, names[colour]))
    return names


def write_jsonl(path: str, rows: list[dict]) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')
    return path


def colour_rows(names: dict[str, str], repeats: int) -> list[dict]:
    """The toy task: '<image>What colour is the square?' answered by the colour's name; paths relative."""
    return [{'messages': [{'role': 'user', 'content': '<image>What colour is the square?'},
                          {'role': 'assistant', 'content': colour}], 'images': [name]}
            for _ in range(repeats) for colour, name in names.items()]
