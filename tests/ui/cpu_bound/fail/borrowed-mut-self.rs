struct Model {
    weights: Vec<f32>,
}

impl Model {
    #[lanes::cpu_bound]
    fn train(&mut self) {
        self.weights.iter_mut().for_each(|w| *w *= 0.5);
    }
}

fn main() {}
