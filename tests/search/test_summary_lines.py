"""The printed summary's final phase: the split named on every line, each candidate's runs, what each interval
covers, every gain over the baseline, whether the comparisons are adjusted, and the verdict."""

from __future__ import annotations

from contract.final import TEST_ACC, summarize
from contract.status import COMPLETED, DIVERGED
from contract.summary import SearchSummary
from search.experiment.results import final_lines
from search.experiment.search_config import SearchConfig
from tests.contract.final_rows import IMAGES, runs


def _lines(rows, split="test") -> list[str]:
    result = summarize(rows, split, COMPLETED)
    summary = SearchSummary(final=result.to_dict(), final_split=split)
    cfg = SearchConfig.load(None, ["base.model.name=t2t_vit_test"], name="printed")
    return final_lines(summary, summary.final_result, cfg)


def test_each_candidate_its_runs_and_every_gain_are_printed():
    rows = runs("lucky", 0.99, 0.97, ends=(COMPLETED, DIVERGED, DIVERGED))
    rows += runs("steady", 0.90, 0.90) + runs("base", 0.85, 0.85, baseline=True)
    lines = _lines(rows)
    text = "\n".join(lines)
    assert lines[0].startswith("final phase (test split; trained from scratch, 3 seeds per configuration")
    (line,) = [li for li in lines if "trial lucky:" in li]
    assert line.strip().startswith("pick:") and "runs 1 completed, 2 diverged: the others are left out" in line
    assert "it may not win (another candidate completed every run)" in line
    (line,) = [li for li in lines if "trial steady:" in li]
    assert line.strip().startswith("winner:") and f"over 3 training seeds, the same {IMAGES} images" in line
    assert "runs 3 completed" in line and "left out" not in line
    assert f"(95% Wilson interval at {IMAGES} images, for the accuracy on every image like these" in text
    assert "trial lucky - baseline:" in text and "trial steady - baseline:" in text
    verdict = summarize(rows, "test", COMPLETED).verdict()
    assert lines[-1] == f"  {verdict}" and verdict.startswith("the search's pick, trial lucky, cannot be told apart")
    assert verdict.endswith("the 2 comparisons with the baseline are not adjusted for their number")


def test_val_numbers_are_never_called_test():
    rows = [{k: v for k, v in r.items() if k != TEST_ACC} for r in runs("pick", 0.9, 0.9) + runs("b", 0.8, 0.8, True)]
    lines = _lines(rows, "val")
    assert lines[0].startswith("final phase (val split") and "biased upward" in lines[1]
    assert not [li for li in lines[2:] if "test" in li], lines
