import CxxBridge
import ResNetKit
