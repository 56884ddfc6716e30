fn main() {
    println!("deltagrad");
}
