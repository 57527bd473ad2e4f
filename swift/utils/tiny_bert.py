"""A tiny BERT-style encoder folder, built offline: BertConfig with random weights and a WordPiece tokenizer trained
locally, as ms-swift's demo_bert uses bert-base-chinese. For tests and demos of sequence classification.

    python -m swift.utils.tiny_bert OUT_DIR [--corpus rows.jsonl ...]
"""
import argparse
import os

import torch

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

from .tiny_models import _corpus, _strings_of_jsonl

BERT_SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def build_bert_tokenizer(vocab_size: int = 1000, extra_texts: list[str] | None = None) -> BertTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token='[UNK]'))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(_corpus(extra_texts or []),
                            trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIAL))
    cls, sep = tok.token_to_id('[CLS]'), tok.token_to_id('[SEP]')
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B:1 [SEP]:1', special_tokens=[('[CLS]', cls), ('[SEP]', sep)])
    return BertTokenizerFast(tokenizer_object=tok, unk_token='[UNK]', sep_token='[SEP]', pad_token='[PAD]',
                             cls_token='[CLS]', mask_token='[MASK]', do_lower_case=True)


def build_tiny_bert(out_dir: str, hidden_size: int = 64, num_layers: int = 2,
                    extra_texts: list[str] | None = None, seed: int = 0) -> str:
    """A ``BertForPreTraining`` folder (config.json, safetensors, tokenizer) at ``out_dir``; returns ``out_dir``.
    The weights depend on ``seed`` only."""
    tokenizer = build_bert_tokenizer(extra_texts=extra_texts)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=2, intermediate_size=hidden_size * 2, max_position_embeddings=256,
                        pad_token_id=tokenizer.pad_token_id,
                        # no dropout, and weights wider than BERT's 0.02: a model this small then leaves the loss
                        # plateau of a toy task within a few dozen steps, whatever the seed
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.1)
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(seed)
    BertForPreTraining(config).save_pretrained(out_dir)  # with the pooler that BERT classifiers read
    tokenizer.save_pretrained(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--corpus', nargs='*', default=[], help='jsonl files whose strings train the tokenizer')
    args = parser.parse_args()
    build_tiny_bert(args.out_dir, extra_texts=[text for path in args.corpus for text in _strings_of_jsonl(path)])
    print(args.out_dir)


if __name__ == '__main__':
    main()
