/// Placeholder until compare lands.
enum CompareCommand {
    static func main(_ arguments: [String]) -> Int32 { 1 }
}
