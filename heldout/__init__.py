"""heldout: memorization, influence and consistency from heldout training."""
