"""Shared test set-up: quiet native logs, keep BLAS single-threaded, stay offline."""

import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="module")
def demo():
    """The demo brand's profile (test_conversation.py has a `demo` of its own: a brand on a live server)."""
    from facestage.dialogue import Profile
    from facestage.dialogue.store import demo_profile_dict

    return Profile.from_dict(demo_profile_dict())


@pytest.fixture(scope="module")
def employee(demo):
    """The demo brand's employee with the embedded (retrieval) dialogue; one per test module."""
    from facestage.dialogue import Employee

    return Employee(demo)
