/** The dashboard commands' identifiers, shared by the manifest (package.json) and the code. */
export const DashboardCommands = {
  openRunDashboard: 'conveyor.openRunDashboard',
  openMetricsDashboard: 'conveyor.openMetricsDashboard',
  openTimeline: 'conveyor.openTimeline',
} as const;
