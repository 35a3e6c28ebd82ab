/// FlexAssign: fitness matrix, load bounds, assignment solvers, baselines and load metrics (host only, pure).
public enum FlexAssignModule {}
