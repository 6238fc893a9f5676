"""`make bench`: the service measured from outside, each figure beside a same-run baseline."""
