/// FlexModel: the MoE model, forward/backward, optimiser, fitness measurement (no I/O).
public enum FlexModelModule {}
