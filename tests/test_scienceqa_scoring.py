"""Category math on a hand-made problem set, every column computed by hand."""

import random

import pytest

from modeling_scitune.scienceqa import Problem, score


def problem(pid, subject, grade, hint="", image=None, n=2, answer=0):
    return Problem(pid=pid, question="q", choices=[f"c{i}" for i in range(n)], answer=answer, hint=hint,
                   image=image, grade=f"grade{grade}", subject=subject, topic=f"t-{subject[:3]}")


PROBLEMS = [
    problem("1", "natural science", 1, hint="h", image="img"),  # official TXT+IMG; SciTune IMG
    problem("2", "natural science", 1),                          # official NO; SciTune TXT+NO
    problem("3", "natural science", 2, image="img"),              # IMG; SciTune NO too
    problem("4", "social science", 2, hint="h"),                  # official TXT; SciTune TXT
    problem("5", "social science", 7, hint="h", image="img"),
    problem("6", "language science", 8),
    problem("7", "language science", 8, n=4),
    problem("8", "language science", 12, hint="h"),
]
# Correct: 1, 2, 4, 6, 8 (5 of 8); 3, 5, 7 wrong.
PREDICTIONS = {"1": 0, "2": 0, "3": 1, "4": 0, "5": -1, "6": 0, "7": 2, "8": 0}


def test_official_columns_by_hand():
    official = score(PROBLEMS, PREDICTIONS)["official"]
    assert official["NAT"] == pytest.approx(100 * 2 / 3, abs=0.01)  # 1,2 right; 3 wrong
    assert official["SOC"] == 50.0                                    # 4 right; 5 wrong
    assert official["LAN"] == pytest.approx(100 * 2 / 3, abs=0.01)    # 6,8 right; 7 wrong
    assert official["TXT"] == 75.0    # hint non-empty: 1,4,5,8 -> 3/4 (includes 1 and 5 that have images)
    assert official["IMG"] == pytest.approx(100 / 3, abs=0.01)        # 1,3,5 -> 1/3
    assert official["NO"] == pytest.approx(100 * 2 / 3, abs=0.01)     # no hint, no image: 2,6,7 -> 2/3
    assert official["G1-6"] == 75.0   # pooled over grades 1-6: 1,2,3,4 -> 3/4
    assert official["G7-12"] == 50.0  # 5,6,7,8 -> 2/4
    assert official["Avg"] == 62.5


def test_scitune_style_columns_by_hand():
    scitune = score(PROBLEMS, PREDICTIONS)["scitune_style"]
    assert scitune["TXT"] == 80.0     # no image: 2,4,6,7,8 -> 4/5
    assert scitune["IMG"] == pytest.approx(100 / 3, abs=0.01)
    assert scitune["NO"] == 50.0      # empty hint, image or not: 2,3,6,7 -> 2/4
    # Unweighted mean of per-grade accuracies: grade1 2/2, grade2 1/2 -> 75; grade7 0/1, grade8 1/2, grade12 1/1.
    assert scitune["G1-6"] == 75.0
    assert scitune["G7-12"] == pytest.approx((0 + 50 + 100) / 3, abs=0.01)
    assert scitune["Avg"] == 62.5 and scitune["NAT"] == pytest.approx(66.67, abs=0.01)


def test_per_grade_topic_chance_and_missing_predictions():
    result = score(PROBLEMS, {"1": 0}, parse_failures=3)
    assert result["official"]["Avg"] == 12.5  # missing predictions count as wrong
    assert result["per_grade"]["grade1"] == 50.0 and result["per_topic"]["t-nat"] == pytest.approx(33.33, abs=0.01)
    assert result["chance"]["official"]["LAN"] == pytest.approx(100 * (0.5 + 0.25 + 0.5) / 3, abs=0.01)
    assert result["parse_failures"] == 3


def test_shuffled_options_keep_the_answer_attached_to_its_option():
    from modeling_scitune.scienceqa.formats import build_answer, build_question
    from modeling_scitune.scienceqa.problems import with_shuffled_options

    problem = Problem(pid="7", question="Which continent is Kenya in?", choices=["Asia", "Africa", "Europe", "Oceania"],
                      answer=1, solution="Kenya is in Africa.")
    rng = random.Random(0)
    copies = [with_shuffled_options(problem, rng) for _ in range(12)]
    for copy in copies:
        assert sorted(copy.choices) == sorted(problem.choices) and copy.choices[copy.answer] == "Africa"
        assert f"({copy.answer_letter}) Africa" in build_question(copy)
        assert build_answer(copy).endswith(f"ANSWER: {copy.answer_letter}.")
    assert len({copy.answer for copy in copies}) > 1  # the letter really moves
    assert problem.choices == ["Asia", "Africa", "Europe", "Oceania"] and problem.answer == 1  # original untouched
