"""Instance backends: where the autoscaler's decisions turn into running instances."""
