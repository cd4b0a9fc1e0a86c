import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis,
  YAxis } from "recharts";

import { type ChartChoice, chartData } from "../chart";

const COLORS = ["#0b57d0", "#b3261e", "#146c2e", "#7d5260", "#8a5a00"];

export function ResultChart({ columns, rows, choice }: { columns: string[]; rows: unknown[][]; choice: ChartChoice }) {
  const data = chartData(columns, rows, choice);
  const Chart = choice.kind === "line" ? LineChart : BarChart;
  return (
    <figure data-testid="result-chart" data-kind={choice.kind} style={{ margin: 0 }}>
      <ResponsiveContainer width="100%" height={320}>
        <Chart data={data} margin={{ top: 10, right: 20, bottom: 10, left: 10 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey={choice.x} />
          <YAxis />
          <Tooltip />
          <Legend />
          {choice.ys.map((y, i) =>
            choice.kind === "line" ? (
              <Line key={y} type="monotone" dataKey={y} stroke={COLORS[i % COLORS.length]} dot={false}
                isAnimationActive={false} />
            ) : (
              <Bar key={y} dataKey={y} fill={COLORS[i % COLORS.length]} isAnimationActive={false} />
            ),
          )}
        </Chart>
      </ResponsiveContainer>
      <figcaption className="note">
        {choice.kind === "line" ? "Line" : "Bars"} of {choice.ys.join(", ")} by {choice.x}
      </figcaption>
    </figure>
  );
}
