export interface Step {
  args: string[];
  as: string;
  stdout: string;
  code: number;
}
export function checkWalkthrough(): void {}
