// The pod sandbox ("pause") program of the test cluster, built into a scratch image.
module kubelambda.local/testinfra/pause

go 1.24.0
