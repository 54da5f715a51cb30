"""bench/multi30k.py and bench/peers/fairseq_peer.py: the paper's fairseq command, fairseq's logs, one table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import bench_script


@pytest.fixture(scope="module")
def multi30k():
    yield from bench_script("multi30k")


@pytest.fixture(scope="module")
def peer(multi30k):
    return sys.modules["fairseq_peer"]  # bench/multi30k.py puts bench/peers on the path and imports it


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_train_command_is_the_papers_in_one_process(peer, tmp_path: Path):
    settings = peer.FairseqSettings(budget=5400, work=tmp_path)
    command = peer.train_cmd(settings, tmp_path / "bin", tmp_path / "ckpt")
    assert Path(command[0]).name == "fairseq-train" and command[1] == str(tmp_path / "bin")
    paper = {"--arch": "transformer_tiny_mmt", "--dropout": "0.3", "--warmup-updates": "2000", "--lr": "0.005",
             "--max-tokens": "4096", "--max-update": "8000", "--patience": "10", "--target-lang": "de"}
    assert {name: flag(command, name) for name in paper} == paper
    assert "--share-all-embeddings" in command and "--cpu" in command
    stock = {"--optimizer": "adam", "--adam-betas": "(0.9, 0.98)", "--clip-norm": "0.0",
             "--lr-scheduler": "inverse_sqrt", "--criterion": "label_smoothed_cross_entropy", "--label-smoothing": "0.1"}
    assert {name: flag(command, name) for name in stock} == stock
    # two GPUs of 4096 tokens each in the paper: one process accumulates two batches per update
    assert flag(command, "--update-freq") == "2"
    assert float(flag(command, "--stop-time-hours")) == pytest.approx(1.5)
    assert Path(flag(command, "--user-dir")).name == "fairseq_user"


def test_the_plugin_registers_the_papers_shape(peer):
    source = (Path(peer.__file__).parent / "fairseq_user" / "__init__.py").read_text(encoding="utf-8")
    assert f'ARCH = "{peer.ARCH}"' in source
    for name, value in (("encoder_layers", 4), ("decoder_layers", 4), ("encoder_embed_dim", 128),
                        ("encoder_ffn_embed_dim", 256), ("encoder_attention_heads", 4)):
        assert f'"{name}": {value}' in source


def test_generate_decodes_the_best_checkpoint_with_beam_5_and_bpe_removed(peer, tmp_path: Path):
    settings = peer.FairseqSettings(budget=60, work=tmp_path, tgt="fr")
    command = peer.generate_cmd(settings, tmp_path / "bin", tmp_path / "checkpoint_best.pt", "test")
    assert (flag(command, "--beam"), flag(command, "--gen-subset"), flag(command, "--target-lang")) == ("5", "test", "fr")
    assert "--remove-bpe" in command and flag(command, "--path").endswith("checkpoint_best.pt")
    assert flag(command, "--required-batch-size-multiple") == "1"  # the default 8 drops up to 7 sentences
    assert settings.corpus("test", "fr").name == "test_2016_flickr.lc.norm.tok.fr"
    assert settings.corpus("valid", "en").name == "val.lc.norm.tok.en"


def test_fairseq_runs_on_the_given_threads_and_can_read_its_own_checkpoints(peer):
    env = peer.fairseq_env(2)
    assert (env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) == ("2", "2")
    assert env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"  # fairseq pickles an argparse.Namespace


def test_smoke_settings_change_only_what_they_name(peer):
    settings = peer.parse_args(["--budget", "170", "--max-tokens", "1024", "--update-freq", "1", "--limit", "100"])
    assert (settings.max_tokens, settings.update_freq, settings.limit) == (1024, 1, 100)
    assert (settings.warmup_updates, settings.lr, settings.patience) == (2000, 0.005, 10)


def test_the_joint_bpe_is_learned_once_and_preprocessing_shares_one_dictionary(peer, tmp_path: Path):
    settings = peer.FairseqSettings(budget=60, work=tmp_path, merges=8000)
    assert peer.learn_bpe_cmd(settings)[1:] == ["learn-bpe", "-s", "8000"]
    command = peer.preprocess_cmd(settings, tmp_path / "bpe", tmp_path / "bin")
    assert "--joined-dictionary" in command
    assert flag(command, "--validpref") == str(tmp_path / "bpe" / "valid")


TRAIN_LOG = """\
2026-12-07 21:40:01 | INFO | fairseq_cli.train | num. shared model params: 3,110,400 (num. trained: 3,110,400)
2026-12-07 21:41:00 | INFO | train_inner | epoch 001:     10 / 47 loss=13.02, nll_loss=12.95, ppl=7911.4, wps=2000, ups=0.25, wpb=7800, bsz=290, num_updates=10, lr=2.5e-05, gnorm=3.1, train_wall=39, wall=45
2026-12-07 21:41:40 | INFO | train_inner | epoch 001:     20 / 47 loss=11.5, nll_loss=11.3, ppl=2520.1, wps=3000, ups=0.38, wpb=8000, bsz=300, num_updates=20, lr=5e-05, gnorm=2.2, train_wall=26, wall=71
2026-12-07 21:42:20 | INFO | train_inner | epoch 001:     30 / 47 loss=10.1, nll_loss=9.8, ppl=891.4, wps=2600, ups=0.33, wpb=8200, bsz=310, num_updates=30, lr=7.5e-05, gnorm=1.9, train_wall=30, wall=101
2026-12-07 21:42:30 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 9.6 | nll_loss 9.2 | ppl 588.1 | wps 9000 | wpb 1200 | bsz 50 | num_updates 33
2026-12-07 21:42:31 | INFO | fairseq_cli.train | Stopping training due to cumulative_training_time: 0.0505 > stop_time_hours: 0.05 hour(s)
2026-12-07 21:42:31 | INFO | train | epoch 001 | loss 11.2 | nll_loss 11.0 | ppl 2000 | wps 2500 | wpb 8000 | bsz 300 | num_updates 33 | lr 8.25e-05 | train_wall 100 | wall 110
"""


def test_the_train_log_gives_updates_speed_and_the_loss_trajectory(peer):
    stats = peer.parse_train_log(TRAIN_LOG)
    assert (stats.updates, stats.params) == (33, 3_110_400)
    assert stats.tok_per_s_median == 2600  # the median window, not the epoch's mean
    assert stats.tgt_tokens_per_update == pytest.approx(8000)
    assert [(point["update"], point["loss"]) for point in stats.trajectory] == [(10, 13.02), (20, 11.5), (30, 10.1)]
    assert stats.valid == [{"epoch": 1, "update": 33, "loss": 9.6, "nll_loss": 9.2, "ppl": 588.1}]
    assert stats.stop_reason.startswith("cumulative_training_time")


def test_generate_output_is_put_back_in_input_order(peer):
    text = "S-1\tb\nH-1\t-0.2\tzwei\nD-1\t-0.2\tzwei hunde\nS-0\ta\nD-0\t-0.1\tein hund\n"
    assert peer.parse_generate(text) == ["ein hund", "zwei hunde"]
    with pytest.raises(peer.PeerError, match="gaps"):
        peer.parse_generate("D-0\t-0.1\tein\nD-2\t-0.1\tdrei\n")


def test_scores_take_the_tokenized_text_as_it_is(peer):
    scores = peer.score(["ein hund läuft ."], ["ein hund läuft ."])
    assert (scores["bleu"], scores["len_ratio"]) == (100.0, 1.0)
    assert "tok:none" in scores["bleu_signature"]
    # tokenize none: "läuft." is one token, so the hypothesis is one token short and shares no 4-gram
    scores = peer.score(["ein hund läuft."], ["ein hund läuft ."])
    assert scores["len_ratio"] == pytest.approx(0.75) and scores["bleu"] < 50
    with pytest.raises(peer.PeerError, match="1 hypotheses for 2 references"):
        peer.score(["a"], ["a", "b"])


def test_the_table_has_a_row_per_figure_and_a_gap_for_a_failed_system(multi30k):
    results = {"seq2seq": {"tok_per_s": 5123.4, "updates": 1200, "peak_rss_mb": 900.2, "val_bleu": 38.123,
                           "test_len_ratio": 0.9876},
               "fairseq": {"error": "fairseq-train failed (exit status 1); see train.log"}}
    lines = multi30k.table(results).splitlines()
    assert lines[0] == "| | seq2seq | fairseq |"
    assert len(lines) == 2 + len(multi30k.ROWS) + 1
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:-1]}
    assert rows["tokens/s (target, median window)"] == "| tokens/s (target, median window) | 5,123 | — |"
    assert rows["val BLEU"].endswith("| 38.12 | — |")
    assert rows["test_2016_flickr length ratio"].endswith("| 0.988 | — |")
    assert lines[-1] == "fairseq: fairseq-train failed (exit status 1); see train.log"


def test_seq2seq_figures_come_from_its_train_log(multi30k):
    log = ("2026-12-07 21:07:44 step 50  loss 8.798  lr 1.25e-04  1729 tokens/s\n"
           "2026-12-07 21:11:13 step 100  loss 5.993  lr 2.50e-04  828 tokens/s\n"
           "2026-12-07 21:12:13 step 150  loss 5.5  lr 3.75e-04  1000 tokens/s\n"
           "2026-12-07 22:07:44 time limit reached after 150 steps, 3600 s; checkpoint runs/x/last.pt\n")
    assert multi30k.seq2seq_log_figures(log) == {"updates": 150, "tok_per_s": 1000}
    assert multi30k.seq2seq_log_figures("") == {"updates": None, "tok_per_s": None}


def test_the_seq2seq_command_runs_the_config_for_the_budget(multi30k, tmp_path: Path):
    command = multi30k.seq2seq_command(tmp_path / "multi30k-en-de.yaml", tmp_path, "bench-multi30k-en-de", "60m", 2)
    assert command[1].endswith("train.py") and flag(command, "--config").endswith("multi30k-en-de.yaml")
    sets = [command[i + 1] for i, word in enumerate(command) if word == "--set"]
    assert sets == ["name=bench-multi30k-en-de", "training.max_time=60m", "training.threads=2"]


def test_bad_arguments_are_refused_with_the_fix(multi30k, capsys):
    with pytest.raises(SystemExit):
        multi30k.parse_args(["--systems", "seq2seq,marian"])
    assert "--systems: unknown marian (expected some of seq2seq, fairseq)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        multi30k.parse_args(["--budget", "an hour", "--systems", "fairseq"])
    assert "use e.g. 90s, 30m, 2h" in capsys.readouterr().err
    args = multi30k.parse_args(["--budget", "90s", "--systems", "fairseq", "--pair", "en-fr"])
    assert (args.systems, args.config.name) == (["fairseq"], "multi30k-en-fr.yaml")
