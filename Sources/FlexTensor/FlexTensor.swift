// FlexTensor: storage, shapes, dtypes, kernels and quantisation.
