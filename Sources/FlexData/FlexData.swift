/// FlexData: synthetic generator, loaders, partitioners, shard files.
public enum FlexDataModule {}
