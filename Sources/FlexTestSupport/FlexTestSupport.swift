import FlexTensor
