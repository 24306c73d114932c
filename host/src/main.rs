fn main() {
    println!("modelcall: under construction");
}
