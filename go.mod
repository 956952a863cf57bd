module github.com/residual-nn/residual

go 1.26.8
