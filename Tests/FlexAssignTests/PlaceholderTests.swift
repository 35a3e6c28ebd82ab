import Testing
@testable import FlexAssign
